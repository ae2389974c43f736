"""Cost per 10,000 inbound texts and per 10,000 sent messages, from `make bench-cost`'s snapshot.

Usage: python3 infra/scripts/cost.py [target/bench/debug/cost-bench.json]

The counts (requests, request units, stream records, events, log bytes) come from the snapshot;
the prices, memory size and billed durations are the constants below, each with its source, as
written down in docs/cost.md. Prints Markdown tables.
"""

import json
import math
import sys

# us-east-1 list prices, taken 2026-11-30 (sources and their dates: docs/cost.md).
LAMBDA_REQUEST = 0.20 / 1e6  # per request
LAMBDA_GB_SECOND_ARM = 0.0000133334  # first 7.5 billion GB-s a month
HTTP_API_REQUEST = 1.00 / 1e6  # first 300 million a month
DYNAMODB_WRU = 0.625 / 1e6  # on-demand
DYNAMODB_RRU = 0.125 / 1e6
SQS_REQUEST = 0.40 / 1e6  # standard queue, per 64 KB chunk
EVENTBRIDGE_EVENT = 1.00 / 1e6  # custom events
SECRETS_CALL = 0.05 / 1e4
KMS_REQUEST = 0.03 / 1e4
LOGS_GB = 0.50  # ingestion (Lambda logs: first tier)
TWILIO_SMS_SEGMENT = 0.0083  # US long code, in or out, before carrier fees

MEMORY_GB = 256 / 1024  # template.yaml Globals MemorySize

# Billed duration per invocation (ms, rounded up): warm median latency from `make bench-lambda`
# (docs/benchmarks.md section 4, against moto).
BILLED_MS = {
    "inbound-sms": math.ceil(7.114),
    "status-callback": math.ceil(20.566),
    "send-sms": math.ceil(7.913),
    "send-worker": math.ceil(1.728),
    "event-router": math.ceil(0.068),
    "inbound-processor": math.ceil(1.664),
}


def requests(phase, service, operation):
    return sum(
        r["count"]
        for r in phase["counts"]["requests"]
        if r["service"] == service and r["operation"] == operation
    )


def entries(phase, service, operation):
    return sum(
        e["entries"]
        for e in phase["counts"]["entries"]
        if e["service"] == service and e["operation"] == operation
    )


def dynamodb(phase):
    rows = phase["counts"]["dynamodb"]
    wru = sum(r["wru"] for r in rows)
    gsi = sum(r["gsi_wru"] for r in rows)
    gsi_single = sum(r["gsi_wru"] / 2 if r["operation"] == "TransactWriteItems" else r["gsi_wru"] for r in rows)
    rru = sum(r["rru"] for r in rows)
    return wru, gsi, gsi_single, rru


def queue(phase, name_part, field):
    return sum(q.get(field, 0) for q in phase["counts"]["sqs"] if name_part in q["queue"])


def log_bytes(phase):
    return sum(
        f["bytes"] + f["emf_bytes"]
        for f in phase["logs"]["functions"]
        if not f["function"].startswith("(no span")
    )


def lines(title, n, rows):
    print(f"\n### {title}: per message and per 10,000\n")
    print("| item | quantity per message | formula | $ per 10,000 |")
    print("|---|---:|---|---:|")
    total = 0.0
    for item, quantity, formula, cost in rows:
        total += cost
        print(f"| {item} | {quantity} | {formula} | {cost * 1e4:.4f} |")
    print(f"| **total AWS** | | | **{total * 1e4:.2f}** |")
    print(f"| Twilio, 1 segment (for scale) | 1 | $0.0083 | {TWILIO_SMS_SEGMENT * 1e4:.2f} |")
    return total


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "target/bench/debug/cost-bench.json"
    snapshot = json.load(open(path))

    inbound = snapshot["inbound"]
    n = snapshot["texts"]
    wru, gsi, gsi_single, rru = dynamodb(inbound)
    records = entries(inbound, "dynamodbstreams", "GetRecords records") / n
    events = entries(inbound, "events", "PutEvents") / n
    invocations = {"inbound-sms": 1.0, "inbound-processor": records, "event-router": events}
    gb_s = sum(MEMORY_GB * BILLED_MS[f] / 1000 * k for f, k in invocations.items())
    logs = log_bytes(inbound) / n
    rows = [
        ("Lambda requests", f"{sum(invocations.values()):.3f}", "1 inbound-sms + 1 per stream record (processor) + 1 per event (router) × $0.20/M", sum(invocations.values()) * LAMBDA_REQUEST),
        ("Lambda GB-s", f"{gb_s:.6f}", "Σ invocations × billed ms × 0.25 GB × $0.0000133334", gb_s * LAMBDA_GB_SECOND_ARM),
        ("HTTP API requests", "1", "× $1.00/M", HTTP_API_REQUEST),
        ("DynamoDB WRU (table + GSI)", f"{(wru + gsi) / n:.3f}", f"({wru / n:.3f} + {gsi / n:.3f}) × $0.625/M", (wru + gsi) / n * DYNAMODB_WRU),
        ("DynamoDB RRU", f"{rru / n:.3f}", "× $0.125/M", rru / n * DYNAMODB_RRU),
        ("SQS requests", f"{3 * events:.3f}", "per event: EventBridge's send + the event source's receive and delete × $0.40/M", 3 * events * SQS_REQUEST),
        ("EventBridge events", f"{events:.3f}", "× $1.00/M", events * EVENTBRIDGE_EVENT),
        ("Secrets Manager calls", f"{requests(inbound, 'secretsmanager', 'GetSecretValue') / n:.3f}", "× $0.05/10k", requests(inbound, "secretsmanager", "GetSecretValue") / n * SECRETS_CALL),
        ("KMS requests", f"{sum(r['count'] for r in inbound['counts']['requests'] if r['service'] == 'kms') / n:.3f}", "× $0.03/10k", sum(r["count"] for r in inbound["counts"]["requests"] if r["service"] == "kms") / n * KMS_REQUEST),
        ("CloudWatch Logs bytes", f"{logs:.0f}", "÷ 10⁹ × $0.50/GB", logs / 1e9 * LOGS_GB),
    ]
    inbound_total = lines(f"Inbound text ({n} measured)", n, rows)
    print(f"\n(GSI writes at ×1 in transactions instead of ×2: {(wru + gsi_single) / n:.3f} WRU; processor at measured batches instead of one invocation per record: see docs/cost.md)")

    send = snapshot["send"]
    n = snapshot["sends"]
    wru, gsi, gsi_single, rru = dynamodb(send)
    records = entries(send, "dynamodbstreams", "GetRecords records") / n
    events = entries(send, "events", "PutEvents") / n
    callbacks = send["logs"]["gateway_routes"].get("POST /webhook/twilio/status", 0) / n
    jobs = queue(send, "SendQueue", "SendMessage") / n
    invocations = {"send-sms": 1.0, "send-worker": jobs, "status-callback": callbacks, "event-router": events, "inbound-processor": records}
    gb_s = sum(MEMORY_GB * BILLED_MS[f] / 1000 * k for f, k in invocations.items())
    logs = log_bytes(send) / n
    kms = sum(r["count"] for r in send["counts"]["requests"] if r["service"] == "kms") / n
    rows = [
        ("Lambda requests", f"{sum(invocations.values()):.3f}", "send-sms + worker per job + status-callback per callback + router per event + processor per stream record × $0.20/M", sum(invocations.values()) * LAMBDA_REQUEST),
        ("Lambda GB-s", f"{gb_s:.6f}", "Σ invocations × billed ms × 0.25 GB × $0.0000133334", gb_s * LAMBDA_GB_SECOND_ARM),
        ("HTTP API requests", f"{1 + callbacks:.3f}", "POST /sms/send + status callbacks × $1.00/M", (1 + callbacks) * HTTP_API_REQUEST),
        ("DynamoDB WRU (table + GSI)", f"{(wru + gsi) / n:.3f}", f"({wru / n:.3f} + {gsi / n:.3f}) × $0.625/M", (wru + gsi) / n * DYNAMODB_WRU),
        ("DynamoDB RRU", f"{rru / n:.3f}", "× $0.125/M", rru / n * DYNAMODB_RRU),
        ("SQS requests", f"{3 * jobs + 3 * events:.3f}", "per job: send, receive, delete; per event: the same × $0.40/M", (3 * jobs + 3 * events) * SQS_REQUEST),
        ("EventBridge events", f"{events:.3f}", "× $1.00/M", events * EVENTBRIDGE_EVENT),
        ("Secrets Manager calls", f"{requests(send, 'secretsmanager', 'GetSecretValue') / n:.3f}", "× $0.05/10k", requests(send, "secretsmanager", "GetSecretValue") / n * SECRETS_CALL),
        ("KMS requests", f"{kms:.3f}", "× $0.03/10k", kms * KMS_REQUEST),
        ("CloudWatch Logs bytes", f"{logs:.0f}", "÷ 10⁹ × $0.50/GB", logs / 1e9 * LOGS_GB),
    ]
    send_total = lines(f"Sent message ({n} measured)", n, rows)
    print(f"\n(GSI writes at ×1 in transactions instead of ×2: {(wru + gsi_single) / n:.3f} WRU)")
    print(f"\nper 10,000: inbound ${inbound_total * 1e4:.2f}, sent ${send_total * 1e4:.2f}; Twilio ${TWILIO_SMS_SEGMENT * 1e4:.2f} each way")


if __name__ == "__main__":
    main()
