"""The AWS emulator for the local stack: moto's server, closer to DynamoDB in two ways.

1. moto applies TransactWriteItems without a lock, so concurrent conditional writes can all
   pass their checks (50 concurrent duplicate webhooks stored 6 messages). Real DynamoDB
   isolates transactions, so DynamoDB requests are run one at a time here; every other
   service (SQS long polls in particular) stays concurrent.
   Stream reads are serialised with them: a failed transaction is rolled back by restoring a
   copy of the table, stream included, and a read in between would see records of writes
   that never happened.
2. moto ignores TransactWriteItems' ClientRequestToken. DynamoDB answers a repeated token
   (within ten minutes) with success without applying the transaction again, which is what
   makes the SDK's retry of a timed-out-but-applied transaction safe. Done here too.

Usage: python infra/emulator.py -H 127.0.0.1 -p 4566
"""

import argparse
import io
import json
import threading
import time

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


TOKEN_TTL_SECONDS = 600


class SerialisedDynamoDb:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.tokens = {}

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(("DynamoDB_", "DynamoDBStreams_")):
            return self.app(environ, start_response)
        with self.lock:
            token = None
            if target.endswith(".TransactWriteItems"):
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length)
                environ["wsgi.input"] = io.BytesIO(body)
                try:
                    token = json.loads(body or b"{}").get("ClientRequestToken")
                except ValueError:
                    token = None
                now = time.monotonic()
                self.tokens = {t: at for t, at in self.tokens.items() if now - at < TOKEN_TTL_SECONDS}
                if token in self.tokens:
                    start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0")])
                    return [b"{}"]
            status = {}

            def remember(code, headers, exc_info=None):
                status["code"] = code
                return start_response(code, headers, exc_info)

            # Consume the response inside the lock: WSGI apps may produce it lazily.
            response = list(self.app(environ, remember))
            if token and status.get("code", "").startswith("200"):
                self.tokens[token] = time.monotonic()
            return response


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
