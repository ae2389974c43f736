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
6. SQS SendMessageBatch keeps each entry's MessageSystemAttributes (the X-Ray AWSTraceHeader
   the dispatcher puts on released messages); moto dropped them (SendMessage kept them).

Opt-in, for `make bench-cost` (docs/cost.md): with PARLEY_EMULATOR_COUNTS=1 every request is
counted by service and operation, DynamoDB's with the request units it would consume
(on-demand: item sizes from the stored items before and after each write, GSI writes, x2 in
transactions). `GET /_parley/counts` answers the counts, `POST /_parley/counts/reset` zeroes
them. Requests whose user agent names `app/parley-cost-bench` (the benchmark's own checks) are
not counted. Without the variable nothing changes.

Fault injection (`make chaos`, `parley-local fault`, docs/reliability.md): `POST /_chaos/faults`
{"service": "dynamodb"|"dynamodbstreams"|"sqs"|"events"|"secretsmanager"|"kms", "operation"?,
"resource"? (name prefix), "kind": "unavailable"|"throttle"|"slow", "seconds", "delay_ms"?
(slow; 2000), "probability"? (1.0)} opens a fault window: for `seconds`, matching requests get
a 503 ServiceUnavailable, AWS's own throttling error (which the SDK's retry classifies as
throttling), or their answer `delay_ms` late. `resource` scopes a window to the tables, queues,
buses and secrets whose name starts with it, so a test can fault its own resources on a shared
emulator. `GET /_chaos/faults` lists every window with the requests it hit; `DELETE
/_chaos/faults` ends them all. Requests whose user agent names `app/parley-chaos` (the chaos
runner's audit) are never faulted. With no window open, requests pass untouched.

Usage: python infra/emulator.py -H 127.0.0.1 -p 4566
"""

import argparse
import base64
import copy
import math
import os
import random
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

_moto_send_message_batch = sqs_models.SQSBackend.send_message_batch


def _send_message_batch(self, queue_name, entries):
    """moto 5.2.5's SQSBackend.send_message_batch, keeping each entry's
    MessageSystemAttributes (AWSTraceHeader), which it drops (SendMessage keeps them)."""
    messages, failed = _moto_send_message_batch(self, queue_name, entries)
    by_id = {entry["Id"]: entry for entry in entries.values()}
    for message in messages:
        system = by_id.get(getattr(message, "user_id", None), {}).get("MessageSystemAttributes")
        if system:
            message.system_attributes = system
    return messages, failed


sqs_models.SQSBackend.send_message_batch = _send_message_batch


class SerialisedDynamoDb:
    def __init__(self, app, counter=None):
        self.app = app
        self.lock = threading.Lock()
        self.tokens = {}
        self.counter = counter

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

            counting = self.counter is not None and self.counter.counts(environ)
            if counting:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(length)
                environ["wsgi.input"] = io.BytesIO(body)
                request = _json(body)
                before = _guarded(self.counter.dynamodb_before, target, request)
            # Consume the response inside the lock: WSGI apps may produce it lazily.
            response = list(self.app(environ, remember))
            if token and status.get("code", "").startswith("200"):
                self.tokens[token] = time.monotonic()
            if counting:
                ok = status.get("code", "").startswith("200")
                _guarded(self.counter.dynamodb_after, target, request, before, ok, b"".join(response))
            return response


def _guarded(count, *args):
    """A counting error is printed, never turned into a failed request."""
    try:
        return count(*args)
    except Exception as error:  # noqa: BLE001 - the request must not fail for a count
        print(f"counter: {count.__name__}: {error!r}", flush=True)
        return None


def _json(body):
    try:
        value = json.loads(body or b"{}")
        return value if isinstance(value, dict) else {}
    except ValueError:
        return {}


def _value_size(value):
    """DynamoDB's size of one attribute value (wire format), per the developer guide."""
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").split("e")[0].split("E")[0].strip("0")
        return (max(len(digits), 1) + 1) // 2 + 1
    if kind == "B":
        return _binary_size(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(x.encode()) for x in v)
    if kind == "NS":
        return sum(_value_size({"N": x}) for x in v)
    if kind == "BS":
        return sum(_binary_size(x) for x in v)
    if kind == "L":
        return 3 + sum(1 + _value_size(x) for x in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(x) for k, x in v.items())
    return 0


def _binary_size(v):
    """Bytes of a binary value: on the wire base64; moto may keep it unpadded or raw."""
    if isinstance(v, (bytes, bytearray)):
        return len(v)
    try:
        return len(base64.b64decode(v + "=" * (-len(v) % 4)))
    except (ValueError, TypeError):
        return len(v.encode()) if isinstance(v, str) else 0


def item_size(item):
    """Bytes of an item: attribute names (UTF-8) plus values."""
    if not item:
        return 0
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _units(size, unit):
    return max(1, math.ceil(size / unit))


class Counter:
    """What a bench phase cost, request by request (PARLEY_EMULATOR_COUNTS=1)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = {}
            self.dynamodb = {}
            self.sqs = {}
            self.entries = {}

    @staticmethod
    def counts(environ):
        agent = environ.get("HTTP_USER_AGENT", "") + environ.get("HTTP_X_AMZ_USER_AGENT", "")
        return "app/parley-cost-bench" not in agent

    def snapshot(self):
        with self.lock:
            return {
                "requests": [
                    {"service": s, "operation": o, "count": n}
                    for (s, o), n in sorted(self.requests.items())
                ],
                "dynamodb": [
                    dict(operation=o, table=t, **v) for (o, t), v in sorted(self.dynamodb.items())
                ],
                "sqs": [dict(queue=q, **v) for q, v in sorted(self.sqs.items())],
                "entries": [
                    {"service": s, "operation": o, "entries": n}
                    for (s, o), n in sorted(self.entries.items())
                ],
            }

    def request(self, service, operation):
        with self.lock:
            key = (service, operation)
            self.requests[key] = self.requests.get(key, 0) + 1

    def add_entries(self, service, operation, n):
        with self.lock:
            key = (service, operation)
            self.entries[key] = self.entries.get(key, 0) + n

    def sqs_queue(self, queue, field, n=1):
        with self.lock:
            row = self.sqs.setdefault(queue, {})
            row[field] = row.get(field, 0) + n

    # DynamoDB: called inside SerialisedDynamoDb's lock, so the stored items cannot change
    # between the `before` look-up and the request.

    def _table(self, name):
        try:
            backend = dynamodb_models.dynamodb_backends[_ACCOUNT][_REGION]
            return backend.get_table(name)
        except Exception:
            return None

    def _stored(self, table_name, key):
        table = self._table(table_name)
        if table is None or not key:
            return None
        try:
            bucket = table.items.get(DynamoType(key[table.hash_key_attr]))
            if bucket is None:
                return None
            if table.has_range_key:
                bucket = bucket.get(DynamoType(key[table.range_key_attr]))
                if bucket is None:
                    return None
            return bucket.to_json()["Attributes"]
        except Exception:
            return None

    def _key(self, table_name, item):
        table = self._table(table_name)
        if table is None:
            return None
        names = [table.hash_key_attr] + ([table.range_key_attr] if table.has_range_key else [])
        if not all(n in item for n in names):
            return None
        return {n: item[n] for n in names}

    def _writes(self, target, request):
        """(table, key) of every item a write names."""
        op = target.split(".")[-1]
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            table = request.get("TableName")
            key = request.get("Key") or self._key(table, request.get("Item") or {})
            return [(op, table, key)]
        if op == "TransactWriteItems":
            out = []
            for entry in request.get("TransactItems", []):
                for kind, body in entry.items():
                    table = body.get("TableName")
                    key = body.get("Key") or self._key(table, body.get("Item") or {})
                    out.append((kind, table, key))
            return out
        if op == "BatchWriteItem":
            out = []
            for table, entries in (request.get("RequestItems") or {}).items():
                for entry in entries:
                    if "PutRequest" in entry:
                        out.append(("Put", table, self._key(table, entry["PutRequest"]["Item"])))
                    elif "DeleteRequest" in entry:
                        out.append(("Delete", table, entry["DeleteRequest"]["Key"]))
            return out
        return []

    def dynamodb_before(self, target, request):
        return [(kind, table, key, self._stored(table, key)) for kind, table, key in self._writes(target, request)]

    def _gsi_units(self, table_name, before, after):
        table = self._table(table_name)
        units = 0
        for index in getattr(table, "global_indexes", []) or []:
            names = [k["AttributeName"] for k in index.schema]
            was = before is not None and all(n in before for n in names)
            now = after is not None and all(n in after for n in names)
            if now and was:
                if any(before[n] != after[n] for n in names):
                    units += _units(item_size(before), 1024) + _units(item_size(after), 1024)
                elif before != after:
                    units += _units(item_size(after), 1024)
            elif now:
                units += _units(item_size(after), 1024)
            elif was:
                units += _units(item_size(before), 1024)
        return units

    def _add(self, op, table, **fields):
        with self.lock:
            row = self.dynamodb.setdefault(
                (op, table or "?"),
                {"requests": 0, "failed": 0, "items": 0, "item_bytes": 0, "wru": 0.0, "gsi_wru": 0.0, "rru": 0.0},
            )
            for k, v in fields.items():
                row[k] += v

    def dynamodb_after(self, target, request, before, ok, response):
        service = "dynamodbstreams" if target.startswith("DynamoDBStreams_") else "dynamodb"
        op = target.split(".")[-1]
        self.request(service, op)
        if service == "dynamodbstreams":
            if op == "GetRecords":
                records = len(_json(response).get("Records", []))
                self.add_entries(service, "GetRecords records", records)
                self.request(service, "GetRecords (non-empty)" if records else "GetRecords (empty)")
            return
        answer = _json(response)
        if before:
            factor = 2 if op == "TransactWriteItems" else 1
            wru = gsi = size_total = 0
            for kind, table, key, old in before:
                new = self._stored(table, key)
                size = max(item_size(old), item_size(new))
                size_total += size
                wru += factor * _units(size, 1024)
                if ok and kind != "ConditionCheck":
                    gsi += factor * self._gsi_units(table, old, new)
            table = before[0][1]
            self._add(op, table, requests=1, failed=0 if ok else 1, items=len(before),
                      item_bytes=size_total, wru=wru, gsi_wru=gsi)
            return
        consistent = 1.0 if request.get("ConsistentRead") else 0.5
        if op == "GetItem":
            table = request.get("TableName")
            item = self._stored(table, request.get("Key")) if ok else None
            size = item_size(item)
            self._add(op, table, requests=1, failed=0 if ok else 1, items=1 if item else 0,
                      item_bytes=size, rru=consistent * _units(size, 4096))
        elif op in ("BatchGetItem", "TransactGetItems"):
            rru = size_total = n = 0
            if op == "BatchGetItem":
                named = [
                    (table, key, 1.0 if spec.get("ConsistentRead") else 0.5)
                    for table, spec in (request.get("RequestItems") or {}).items()
                    for key in spec.get("Keys", [])
                ]
            else:
                named = [
                    (e["Get"].get("TableName"), e["Get"].get("Key"), 2.0)
                    for e in request.get("TransactItems", [])
                    if "Get" in e
                ]
            for table, key, factor in named:
                item = self._stored(table, key)
                size = item_size(item)
                size_total += size
                n += 1 if item else 0
                rru += factor * _units(size, 4096)
            self._add(op, named[0][0] if named else "?", requests=1, failed=0 if ok else 1,
                      items=n, item_bytes=size_total, rru=rru)
        elif op in ("Query", "Scan"):
            table = request.get("TableName")
            size = 0
            items = answer.get("Items", [])
            for item in items:
                key = self._key(table, item)
                full = self._stored(table, key) if key else None
                size += item_size(full or item)
            self._add(op, table, requests=1, failed=0 if ok else 1, items=len(items),
                      item_bytes=size, rru=consistent * _units(size, 4096))
        else:
            self._add(op, request.get("TableName"), requests=1, failed=0 if ok else 1)


_ACCOUNT = "123456789012"
_REGION = "us-east-1"


class Counting:
    """Counts every request that is not DynamoDB's (SerialisedDynamoDb counts those) and
    answers /_parley/counts."""

    def __init__(self, app, counter):
        self.app = app
        self.counter = counter

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_parley/counts"):
            if environ.get("REQUEST_METHOD") == "POST" and path.endswith("/reset"):
                self.counter.reset()
                body = b"{}"
            else:
                body = json.dumps(self.counter.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(("DynamoDB_", "DynamoDBStreams_")) or not self.counter.counts(environ):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        request = _json(body)
        if target:
            prefix, _, op = target.partition(".")
            service = {"AmazonSQS": "sqs", "AWSEvents": "events", "TrentService": "kms",
                       "secretsmanager": "secretsmanager"}.get(prefix, prefix)
        else:
            auth = environ.get("HTTP_AUTHORIZATION", "")
            scope = auth.split("Credential=")[-1].split(",")[0].split("/")
            service = scope[3] if len(scope) > 3 else "?"
            segments = [s for s in path.split("/") if s]
            op = environ.get("REQUEST_METHOD", "") + " /" + (segments[0] if segments else "")
        self.counter.request(service, op)
        response = list(self.app(environ, start_response))
        _guarded(self.count_entries, service, op, request, response)
        return response

    def count_entries(self, service, op, request, response):
        if service == "sqs":
            queue = (request.get("QueueUrl") or "").rsplit("/", 1)[-1]
            if op == "ReceiveMessage":
                got = len(_json(b"".join(response)).get("Messages", []))
                self.counter.sqs_queue(queue, "receives_non_empty" if got else "receives_empty")
                self.counter.sqs_queue(queue, "received", got)
            elif op in ("SendMessage", "DeleteMessage", "ChangeMessageVisibility"):
                self.counter.sqs_queue(queue, op, 1)
            elif op.endswith("Batch"):
                self.counter.sqs_queue(queue, op + " entries", len(request.get("Entries", [])))
                self.counter.sqs_queue(queue, op, 1)
        elif service == "events" and op == "PutEvents":
            self.counter.add_entries(service, op, len(request.get("Entries", [])))


# Fault injection (docs/reliability.md, "Chaos suite").

FAULT_KINDS = ("unavailable", "throttle", "slow")
FAULT_SERVICES = ("dynamodb", "dynamodbstreams", "sqs", "events", "secretsmanager", "kms")
CHAOS_AGENT = "app/parley-chaos"

# The code each service answers when it throttles; every one is in the SDK's list of
# throttling errors (aws-runtime's THROTTLING_ERRORS), so its retry backs off as for AWS.
THROTTLE_CODES = {
    "dynamodb": "ProvisionedThroughputExceededException",
    "dynamodbstreams": "LimitExceededException",
    "sqs": "RequestThrottled",
    "events": "ThrottlingException",
    "secretsmanager": "ThrottlingException",
    "kms": "ThrottlingException",
}


def request_service(environ, path):
    """(service, operation) of a request, as the counter names them."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith("DynamoDBStreams_"):
        return "dynamodbstreams", target.split(".")[-1]
    if target.startswith("DynamoDB_"):
        return "dynamodb", target.split(".")[-1]
    if target:
        prefix, _, op = target.partition(".")
        service = {"AmazonSQS": "sqs", "AWSEvents": "events", "TrentService": "kms",
                   "secretsmanager": "secretsmanager"}.get(prefix, prefix)
        return service, op
    auth = environ.get("HTTP_AUTHORIZATION", "")
    scope = auth.split("Credential=")[-1].split(",")[0].split("/")
    service = scope[3] if len(scope) > 3 else "?"
    segments = [s for s in path.split("/") if s]
    return service, environ.get("REQUEST_METHOD", "") + " /" + (segments[0] if segments else "")


def resource_names(request):
    """The names of the tables, queues, buses and secrets a request names."""
    names = set()

    def walk(value):
        if isinstance(value, dict):
            for key, v in value.items():
                if key in ("TableName", "EventBusName", "SecretId", "Name") and isinstance(v, str):
                    names.add(v.rsplit("/", 1)[-1] if v.startswith("arn:") else v)
                elif key == "QueueUrl" and isinstance(v, str):
                    names.add(v.rsplit("/", 1)[-1])
                elif key == "StreamArn" and isinstance(v, str):
                    # arn:aws:dynamodb:region:account:table/NAME/stream/LABEL
                    parts = v.split("/")
                    if len(parts) > 1:
                        names.add(parts[1])
                elif key == "RequestItems" and isinstance(v, dict):
                    names.update(v.keys())
                    walk(v)
                else:
                    walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(request)
    return names


class FaultWindow:
    def __init__(self, spec, now):
        self.id = spec["id"]
        self.service = spec["service"]
        self.operation = spec.get("operation")
        self.resource = spec.get("resource")
        self.kind = spec["kind"]
        self.seconds = float(spec["seconds"])
        self.delay_ms = int(spec.get("delay_ms", 2000))
        self.probability = float(spec.get("probability", 1.0))
        self.opened = now
        self.until = now + self.seconds
        self.hits = 0

    def matches(self, service, operation, names):
        if service != self.service:
            return False
        if self.operation and operation != self.operation:
            return False
        if self.resource and not any(n.startswith(self.resource) for n in names):
            return False
        return True

    def to_json(self, now):
        return {
            "id": self.id, "service": self.service, "operation": self.operation,
            "resource": self.resource, "kind": self.kind, "seconds": self.seconds,
            "delay_ms": self.delay_ms, "probability": self.probability, "hits": self.hits,
            "remaining_s": max(0.0, round(self.until - now, 3)),
        }


class FaultSpecError(ValueError):
    pass


def _fault_spec(body):
    spec = _json(body)
    if spec.get("kind") not in FAULT_KINDS:
        raise FaultSpecError(f"kind must be one of {', '.join(FAULT_KINDS)}")
    if spec.get("service") not in FAULT_SERVICES:
        raise FaultSpecError(f"service must be one of {', '.join(FAULT_SERVICES)}")
    seconds = spec.get("seconds")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 86400:
        raise FaultSpecError("seconds must be a number from 0 (excluded) to 86400")
    for key, kind in (("operation", str), ("resource", str)):
        if key in spec and spec[key] is not None and not isinstance(spec[key], kind):
            raise FaultSpecError(f"{key} must be a string")
    delay = spec.get("delay_ms", 2000)
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 60000:
        raise FaultSpecError("delay_ms must be a whole number from 0 to 60000")
    probability = spec.get("probability", 1.0)
    if not isinstance(probability, (int, float)) or isinstance(probability, bool) or not 0 < probability <= 1:
        raise FaultSpecError("probability must be a number from 0 (excluded) to 1")
    unknown = set(spec) - {"service", "operation", "resource", "kind", "seconds", "delay_ms", "probability"}
    if unknown:
        raise FaultSpecError(f"unknown fields: {', '.join(sorted(unknown))}")
    return spec


class FaultInjection:
    """The outermost middleware: answers /_chaos/faults and faults the requests that match an
    open window. Slow answers sleep here, before the DynamoDB lock, so a slowed request delays
    only itself."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.windows = []
        self.next_id = 1

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.rstrip("/") == "/_chaos/faults":
            return self.control(environ, start_response)
        now = time.monotonic()
        with self.lock:
            active = [w for w in self.windows if w.until > now]
        if not active:
            return self.app(environ, start_response)
        agent = environ.get("HTTP_USER_AGENT", "") + environ.get("HTTP_X_AMZ_USER_AGENT", "")
        if CHAOS_AGENT in agent:
            return self.app(environ, start_response)
        service, operation = request_service(environ, path)
        names = set()
        if any(w.resource for w in active):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            names = resource_names(_json(body))
        window = None
        with self.lock:
            for w in active:
                if w.matches(service, operation, names) and random.random() < w.probability:
                    w.hits += 1
                    window = w
                    break
        if window is None:
            return self.app(environ, start_response)
        if window.kind == "slow":
            time.sleep(window.delay_ms / 1000)
            return self.app(environ, start_response)
        if window.kind == "throttle":
            code = THROTTLE_CODES.get(service, "ThrottlingException")
            return _aws_error(start_response, "400 Bad Request", code, "Rate exceeded (injected by infra/emulator.py)")
        return _aws_error(start_response, "503 Service Unavailable", "ServiceUnavailable",
                          "Service unavailable (injected by infra/emulator.py)")

    def control(self, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        now = time.monotonic()
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            try:
                spec = _fault_spec(environ["wsgi.input"].read(length))
            except FaultSpecError as error:
                return _control_answer(start_response, "400 Bad Request", {"error": str(error)})
            with self.lock:
                spec["id"] = self.next_id
                self.next_id += 1
                window = FaultWindow(spec, now)
                self.windows.append(window)
            print(f"fault window {window.id}: {window.service} {window.operation or '*'} "
                  f"{window.resource or '*'} {window.kind} for {window.seconds} s", flush=True)
            return _control_answer(start_response, "201 Created", window.to_json(now))
        if method == "DELETE":
            with self.lock:
                # Open windows end now and keep the time they lasted; ended ones stay as they were.
                for w in self.windows:
                    if w.until > now:
                        w.until = now
                        w.seconds = round(now - w.opened, 3)
            print("fault windows closed", flush=True)
            return _control_answer(start_response, "200 OK", self.snapshot(now))
        return _control_answer(start_response, "200 OK", self.snapshot(now))

    def snapshot(self, now):
        with self.lock:
            return {"windows": [w.to_json(now) for w in self.windows]}


def _aws_error(start_response, status, code, message):
    body = json.dumps({"__type": code, "message": message}).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.0"),
                            ("x-amzn-ErrorType", code), ("x-amzn-query-error", f"{code};Sender"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _control_answer(start_response, status, value):
    body = json.dumps(value).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    counter = Counter() if os.environ.get("PARLEY_EMULATOR_COUNTS") == "1" else None
    app = SerialisedDynamoDb(app, counter)
    if counter is not None:
        app = Counting(app, counter)
    app = FaultInjection(app)
    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
