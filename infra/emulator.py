"""The AWS emulator for the local stack: moto's server, closer to DynamoDB in three ways and faster in a fourth.

1. moto applies TransactWriteItems without a lock, so concurrent conditional writes can all
   pass their checks (50 concurrent duplicate webhooks stored 6 messages). Real DynamoDB
   isolates transactions, so DynamoDB requests are run one at a time here; every other
   service (SQS long polls in particular) stays concurrent. Stream reads are serialised with
   them, so a read never sees records of a transaction that is still running or being
   cancelled.
2. moto ignores TransactWriteItems' ClientRequestToken. DynamoDB answers a repeated token
   (within ten minutes) with success without applying the transaction again, which is what
   makes the SDK's retry of a timed-out-but-applied transaction safe. Done here too.
3. Transactions roll back item by item instead of copying whole tables; a cancelled
   transaction leaves no items and no stream records behind. moto 5.2.5 deep-copies every
   table a transaction touches (all items, and the stream with all its records) before
   applying it, which cost hundreds of milliseconds per transaction at 2,000 items. Here that
   copy is a no-op; a transaction first copies only the items it names, and notes the length
   of each stream it may write to.

4. SQS ReceiveMessage reads the queue's retention period directly; moto recomputed every
   queue attribute, counting all its messages, for each message received. Speed only.
5. SQS SendMessage (and each entry of SendMessageBatch) reads ContentBasedDeduplication from
   the queue itself; moto computed every queue attribute, counting all its messages twice, for
   each message sent, so a SendMessageBatch of 10 cost ~1.5 ms per message already on the
   queue (850 ms at 6,000 messages; the dispatcher enqueues 10,000 at once). Speed only.

Usage: python infra/emulator.py -H 127.0.0.1 -p 4566
"""

import argparse
import copy
import hashlib
import io
import json
import string
import threading
import time
import types

import moto.dynamodb.models as dynamodb_models
import moto.sqs.models as sqs_models
from moto.core.utils import unix_time
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


TOKEN_TTL_SECONDS = 600


_deepcopy = copy.deepcopy


def _deepcopy_except_tables(value, memo=None):
    """moto's whole-table backup in transact_write_items becomes the table itself."""
    if isinstance(value, dynamodb_models.Table):
        return value
    return _deepcopy(value, memo)


def _undo_log(backend, transact_items):
    """What a transaction may change: a copy of each item it names (None if absent), and the
    stream shard of each table it touches with the shard's record count."""
    items = []
    shards = {}
    for entry in transact_items:
        for op_type, op in entry.items() if isinstance(entry, dict) else ():
            try:
                table = backend.get_table(op["TableName"])
                key = op["Item"] if op_type == "Put" else op["Key"]
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.has_range_key else None
            except Exception:
                # moto fails this operation the same way before it changes anything for it.
                continue
            # Not table.get_item: on a range-key table it inserts an empty hash dict.
            current = table.items.get(hash_value)
            if range_value is not None:
                current = current.get(range_value) if current is not None else None
            # The copy matters: UpdateItem changes the stored Item in place.
            items.append((table, hash_value, range_value, _deepcopy(current)))
            shard = table.stream_shard
            if shard is not None and id(table) not in shards:
                shards[id(table)] = (table, shard, shard.items, len(shard.items))
    return items, shards


def _roll_back(items, shards):
    for table, hash_value, range_value, old in reversed(items):
        if range_value is None:
            if old is None:
                table.items.pop(hash_value, None)
            else:
                table.items[hash_value] = old
        elif old is None:
            bucket = table.items.get(hash_value)
            if bucket is not None:
                bucket.pop(range_value, None)
                if not bucket:
                    del table.items[hash_value]
        else:
            table.items[hash_value][range_value] = old
    # No stream records for the undo: the cancelled transaction's records are dropped instead.
    for table, shard, records, length in shards.values():
        table.stream_shard = shard
        shard.items = records
        del records[length:]


_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items_with_undo_log(self, transact_items):
    items, shards = _undo_log(self, transact_items)
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        _roll_back(items, shards)
        raise


# Only the name `copy` inside moto.dynamodb.models changes; the copy module itself does not.
dynamodb_models.copy = types.SimpleNamespace(
    **{**vars(copy), "deepcopy": _deepcopy_except_tables}
)
dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_with_undo_log


def _retained(self, queue_name, message):
    """moto's check computes every queue attribute (counting all messages) for each message a
    ReceiveMessage returns, which made a receive cost ~1 ms per message on the queue."""
    queue = self.get_queue(queue_name)
    return int(queue.message_retention_period) + message.sent_timestamp / 1000 > unix_time()


sqs_models.SQSBackend.is_message_valid_based_on_retention_period = _retained


def _content_based_deduplication(queue):
    """What `queue.attributes.get("ContentBasedDeduplication") == "true"` says, without
    computing the other attributes: the attribute exists only on FIFO queues."""
    if not queue.fifo_queue:
        return False
    return str(getattr(queue, "content_based_deduplication", False)).lower() == "true"


def _send_message(
    self,
    queue_name,
    message_body,
    message_attributes=None,
    delay_seconds=None,
    deduplication_id=None,
    group_id=None,
    system_attributes=None,
    validate_group_id=True,
):
    """moto 5.2.5's SQSBackend.send_message, but for how it reads ContentBasedDeduplication."""
    queue = self.get_queue(queue_name)

    self._validate_message(
        queue,
        message_body=message_body,
        delay_seconds=int(delay_seconds or 0),
        deduplication_id=deduplication_id,
        group_id=group_id,
        validate_group_id=validate_group_id,
    )

    if delay_seconds is not None:
        delay_seconds = int(delay_seconds)
    else:
        delay_seconds = queue.delay_seconds

    message_id = str(sqs_models.random.uuid4())
    message = sqs_models.Message(message_id, message_body, system_attributes)

    if _content_based_deduplication(queue):
        sha256 = hashlib.sha256()
        sha256.update(message_body.encode("utf-8"))
        message.deduplication_id = sha256.hexdigest()

    if deduplication_id is not None:
        message.deduplication_id = deduplication_id
        message.sequence_number = "".join(
            sqs_models.random.choice(string.digits) for _ in range(20)
        )

    if group_id is not None:
        message.group_id = group_id

    if message_attributes:
        message.message_attributes = message_attributes

    if delay_seconds > sqs_models.MAXIMUM_MESSAGE_DELAY:
        msg = (
            f"Value {delay_seconds} for parameter DelaySeconds is invalid. "
            "Reason: DelaySeconds must be >= 0 and <= 900."
        )
        raise sqs_models.InvalidParameterValue(msg)

    message.mark_sent(delay_seconds=delay_seconds)

    queue.add_message(message)

    return message


sqs_models.SQSBackend.send_message = _send_message


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
