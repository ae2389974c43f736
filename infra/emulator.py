"""The AWS emulator for the local stack: moto's server with DynamoDB requests serialised.

moto applies TransactWriteItems without a lock, so concurrent conditional writes can all pass
their checks (50 concurrent duplicate webhooks stored 6 messages). Real DynamoDB isolates
transactions, so DynamoDB requests are run one at a time here; every other service (SQS long
polls in particular) stays concurrent.

Usage: python infra/emulator.py -H 127.0.0.1 -p 4566
"""

import argparse
import threading

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class SerialisedDynamoDb:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with self.lock:
                # Consume the response inside the lock: WSGI apps may produce it lazily.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SerialisedDynamoDb(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
