"""How two moto 5.2.5 costs grow, in-process (mock_aws, no HTTP server), for docs/benchmarks.md.

1. TransactWriteItems vs the number of items already in the table (the table has a stream,
   like the template's): moto deep-copies the whole table before each transaction. Measured
   as moto ships, then with that copy skipped (what emulator_no_tx_backup.py does).
2. ReceiveMessage (10 messages, WaitTimeSeconds 1) vs the number of messages on the queue.

Usage: .venv/moto/bin/python infra/send-bench/moto_costs.py
"""

import copy
import json
import time
import types

import boto3
from moto import mock_aws
import moto.dynamodb.models as models

ITEM = {f"attr{i}": {"S": "x" * 20} for i in range(25)}


def transact_cost(sizes, label):
    client = boto3.client("dynamodb", region_name="us-east-1")
    table = f"t-{label}"
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    written = 0
    for size in sizes:
        while written < size:
            item = dict(ITEM, pk={"S": f"p{written}"}, sk={"S": "MSG#1"})
            client.put_item(TableName=table, Item=item)
            written += 1
        start = time.perf_counter()
        for j in range(5):
            client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": table,
                            "Key": {"pk": {"S": f"q{size}-{j}"}, "sk": {"S": "M"}},
                            "UpdateExpression": "SET a = :a",
                            "ExpressionAttributeValues": {":a": {"S": "1"}},
                        }
                    }
                ]
            )
        per = (time.perf_counter() - start) / 5 * 1000
        print(f"  {label:<22} items {size:5d}: TransactWriteItems {per:8.1f} ms", flush=True)


def receive_cost(depths):
    sqs = boto3.client("sqs", region_name="us-east-1")
    for depth in depths:
        url = sqs.create_queue(QueueName=f"q{depth}", Attributes={"VisibilityTimeout": "180"})[
            "QueueUrl"
        ]
        body = json.dumps({"message_id": "x" * 26, "pk": "CONV#sms#+16282000000", "sk": "MSG#1"})
        for _ in range(0, depth, 10):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(j), "MessageBody": body} for j in range(10)],
            )
        start = time.perf_counter()
        for _ in range(5):
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        per = (time.perf_counter() - start) / 5 * 1000
        print(f"  queue depth {depth:5d}: ReceiveMessage {per:8.1f} ms", flush=True)


@mock_aws
def main():
    sizes = [0, 100, 500, 1000, 2000]
    print("TransactWriteItems (one Update), mean of 5:")
    transact_cost(sizes, "as shipped")
    deepcopy = copy.deepcopy
    models.copy = types.SimpleNamespace(
        **{
            **vars(copy),
            "deepcopy": lambda v, memo=None: v
            if isinstance(v, models.Table)
            else deepcopy(v, memo),
        }
    )
    transact_cost(sizes, "without the table copy")
    models.copy = copy
    print("ReceiveMessage (10 messages), mean of 5:")
    receive_cost([100, 500, 1000, 2500])


if __name__ == "__main__":
    main()
