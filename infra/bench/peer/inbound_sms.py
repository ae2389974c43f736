"""The Python peer of Parley's inbound-sms, written as an idiomatic Python Lambda function would
be: twilio's RequestValidator, phonenumbers, Powertools idempotency on DynamoDB, boto3.

It exists only so the Runtime API benchmark (infra/bench/benches/lambda.rs) can measure it in
the same run as Parley's function, on the same events, emulator and CPU: issue 13's targets are
set against it ("at least 2x faster than the Python equivalent" on the first invocation, "10 %
of its CPU" warm). It does the same work as Parley's webhook, minus language detection (no
idiomatic Python peer of whatlang is as small) and minus sealing the raw payload:

- at init, the webhook secret from Secrets Manager (as Parley reads it);
- per invocation: the API Gateway event's form body, the X-Twilio-Signature checked against the
  public URL, the account checked, both numbers parsed to E.164, the body matched against the
  consent keywords, and the message stored once per MessageSid (Powertools' idempotency record
  plus the message item), answered with TwiML.

Its items use the `peer#` prefix, which no Parley key uses (shared/src/store/keys.rs).
"""

import base64
import json
import os
from urllib.parse import parse_qsl

import boto3
import phonenumbers
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from twilio.request_validator import RequestValidator

ROUTE = "/webhook/twilio/sms"
KEYWORDS = {
    "STOP": "opt_out",
    "STOPALL": "opt_out",
    "UNSUBSCRIBE": "opt_out",
    "CANCEL": "opt_out",
    "END": "opt_out",
    "QUIT": "opt_out",
    "START": "opt_in",
    "UNSTOP": "opt_in",
    "YES": "opt_in",
    "HELP": "help",
    "INFO": "help",
}
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

logger = Logger(service="inbound-sms-peer")
table_name = os.environ["TABLE_NAME"]
secret = json.loads(
    boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["SECRET_ID"])[
        "SecretString"
    ]
)
validator = RequestValidator(secret["twilio_auth_token"])
account_sid = secret.get("twilio_account_sid")
public_url = os.environ["PUBLIC_BASE_URL"].rstrip("/") + ROUTE
table = boto3.resource("dynamodb").Table(table_name)
persistence = DynamoDBPersistenceLayer(
    table_name=table_name,
    key_attr="pk",
    sort_key_attr="sk",
    static_pk_value="peer#idempotency",
)
idempotency = IdempotencyConfig(event_key_jmespath="MessageSid", expires_after_seconds=86400)


def reply(status, body, content_type="application/json"):
    return {"statusCode": status, "headers": {"content-type": content_type}, "body": body}


@idempotent_function(
    data_keyword_argument="sms", persistence_store=persistence, config=idempotency
)
def store(sms):
    text = sms.get("Body", "")
    table.put_item(
        Item={
            "pk": "peer#message#" + sms["MessageSid"],
            "sk": "message",
            "from": sms["From"],
            "to": sms["To"],
            "body": text,
            "keyword": KEYWORDS.get(text.strip().upper(), "none"),
        }
    )
    return {"stored": sms["MessageSid"]}


@logger.inject_lambda_context
def handler(event, context):
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    form = dict(parse_qsl(raw, keep_blank_values=True))
    signature = (event.get("headers") or {}).get("x-twilio-signature", "")
    if not validator.validate(public_url, form, signature):
        return reply(403, '{"error":"invalid_signature"}')
    if form.get("AccountSid") != account_sid:
        return reply(403, '{"error":"account_mismatch"}')
    try:
        numbers = [phonenumbers.parse(form[k], None) for k in ("From", "To")]
    except (KeyError, phonenumbers.NumberParseException):
        return reply(400, '{"error":"invalid_webhook"}')
    sms = dict(form)
    sms["From"], sms["To"] = (
        phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164) for n in numbers
    )
    idempotency.register_lambda_context(context)
    store(sms=sms)
    logger.info("inbound message stored", extra={"message_sid": sms["MessageSid"]})
    return reply(200, TWIML, "text/xml")
