//! Erasure of a person's data (`DELETE /contacts/{phone}`) on the running stack: after it, no
//! item of the whole table holds the number (in any form) or a body, except the consent
//! record the law requires; pending messages are canceled and never sent; message ids still
//! answer (erased); a late status callback recreates nothing; a second erasure finds nothing.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use parley::phone::{Channel, E164};
use parley::time::Timestamp;
use parley_e2e::*;
use serde_json::{json, Value};

async fn call(stack: &Stack, method: &str, path: &str, key: &str) -> Reply {
    let req = stack
        .http
        .request(method.parse().unwrap(), format!("{}{path}", stack.gateway))
        .bearer_auth(key);
    read(req.send().await.expect("gateway reachable")).await
}

/// Every item of the local table, by a paginated Scan.
async fn whole_table(stack: &Stack) -> Vec<HashMap<String, AttributeValue>> {
    let client = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .scan()
            .table_name(stack.store.table())
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan");
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => return items,
        }
    }
}

/// Items holding any of `needles` anywhere (keys, attributes, nested values), by their keys.
async fn traces(stack: &Stack, needles: &[&str]) -> Vec<(String, String)> {
    whole_table(stack)
        .await
        .into_iter()
        .filter(|item| {
            let text = format!("{item:?}");
            needles.iter().any(|n| text.contains(n))
        })
        .map(|item| {
            let key = |k: &str| {
                item.get(k)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default()
            };
            (key("pk"), key("sk"))
        })
        .collect()
}

async fn inbound(stack: &Stack, from: &str, to: &str, body: &str) {
    let form = InboundForm::new(stack, from, body).set("To", to);
    let reply = stack.post_inbound(&form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

fn status_callback(stack: &Stack, sid: &str, to: &str, status: &str) -> InboundForm {
    InboundForm { pairs: vec![] }
        .set("SmsSid", sid)
        .set("SmsStatus", status)
        .set("MessageStatus", status)
        .set("To", to)
        .set("MessageSid", sid)
        .set("AccountSid", &stack.account_sid)
        .set("From", TWILIO_NUMBER)
        .set("ApiVersion", "2010-04-01")
}

async fn post_status(stack: &Stack, form: &InboundForm) -> Reply {
    let route = parley::handlers::status_callback::ROUTE;
    let sig = form.signature(&stack.token, &format!("{}{route}", stack.public_base_url));
    let resp = stack
        .http
        .post(format!("{}{route}", stack.gateway))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(form.encode())
        .send()
        .await
        .unwrap();
    read(resp).await
}

#[tokio::test]
async fn erasure_leaves_no_trace_of_the_number_or_the_bodies() {
    let stack = stack().await;
    let phone = unique_phone();
    let e164 = E164::parse(&phone).unwrap();
    let national = phone[2..].to_owned();
    let tenant = format!("t-{}", ulid::Ulid::new());
    stack.add_tenant(&tenant, &[&phone]).await;

    // A text in (linked to its tenant by the processor), one on WhatsApp, an opt-out and
    // back in (the consent record with its history), a send delivered with an idempotency
    // key, one queued for 20 s from now and one scheduled for next week.
    let hello = unique_body("Hi, is my repair booked");
    inbound(&stack, &phone, TWILIO_NUMBER, &hello).await;
    let hola = unique_body("Hola por WhatsApp");
    inbound(
        &stack,
        &format!("whatsapp:{phone}"),
        &format!("whatsapp:{TWILIO_NUMBER}"),
        &hola,
    )
    .await;
    inbound(&stack, &phone, TWILIO_NUMBER, "STOP").await;
    inbound(&stack, &phone, TWILIO_NUMBER, "START").await;
    eventually(60, "the conversation linked to its tenant", || async {
        let c = stack.store.conversation(Channel::Sms, &e164).await.unwrap();
        c.and_then(|c| c.tenant_id).filter(|t| *t == tenant)
    })
    .await;
    eventually(30, "the tenant mapping", || async {
        stack.store.phone_tenant(&e164).await.unwrap()
    })
    .await;

    let delivered_body = unique_body("Your repair is booked for Tuesday");
    let idem = ulid::Ulid::new().to_string();
    let sent = stack
        .send(&json!({"to": phone, "body": delivered_body}), Some(&idem))
        .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    let sent_id = sent.json()["message_id"].as_str().unwrap().to_owned();
    let sid = eventually(30, "the send delivered", || async {
        let m = stack.outbound(&phone, &sent_id).await?;
        (m.delivery_status.map(|s| s.as_str()) == Some("delivered"))
            .then_some(m.twilio_sid)
            .flatten()
    })
    .await;

    let soon_body = unique_body("Reminder in twenty seconds");
    let soon_at = Timestamp::now().plus(Duration::from_secs(20));
    let soon = stack
        .send(
            &json!({"to": phone, "body": soon_body, "send_at": soon_at.to_string()}),
            None,
        )
        .await;
    assert_eq!(soon.status, 202, "{}", soon.body);
    let soon_id = soon.json()["message_id"].as_str().unwrap().to_owned();
    let later_body = unique_body("Your lease renews next week");
    let later_at = Timestamp::now().plus(Duration::from_secs(7 * 24 * 3600));
    let later = stack
        .send(
            &json!({"to": phone, "body": later_body, "send_at": later_at.to_string()}),
            None,
        )
        .await;
    assert_eq!(later.status, 202, "{}", later.body);
    assert_eq!(later.json()["status"], "scheduled");
    let later_id = later.json()["message_id"].as_str().unwrap().to_owned();

    let bodies = [
        hello.as_str(),
        hola.as_str(),
        delivered_body.as_str(),
        soon_body.as_str(),
        later_body.as_str(),
    ];
    let mut needles = vec![phone.as_str(), national.as_str()];
    needles.extend(bodies);
    assert!(
        !traces(&stack, &needles).await.is_empty(),
        "the scenario stored what it erases"
    );

    // A send-only key may not erase.
    let created = stack
        .http
        .post(format!("{}/keys", stack.gateway))
        .bearer_auth(&stack.api_key)
        .json(&json!({"name": "sender", "scopes": ["send"]}))
        .send()
        .await
        .unwrap();
    let created = read(created).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let send_only = created.json()["token"].as_str().unwrap().to_owned();
    let formatted = format!(
        "+1 ({}) {}-{}",
        &national[..3],
        &national[3..6],
        &national[6..]
    );
    let path = format!("/contacts/{}", encode(&formatted).replace('+', "%20"));
    let refused = call(&stack, "DELETE", &path, &send_only).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let invalid = call(&stack, "DELETE", "/contacts/not-a-number", &stack.api_key).await;
    assert_eq!(invalid.status, 400, "{}", invalid.body);

    // Erased through another written form of the number.
    let erased = call(&stack, "DELETE", &path, &stack.api_key).await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    let json = erased.json();
    assert_eq!(json["erased"]["conversations"], 2, "{json}");
    // hello, STOP, START (sms), hola (whatsapp), the three sends.
    assert_eq!(json["erased"]["messages"], 7, "{json}");
    assert_eq!(json["erased"]["canceled"], 2, "{json}");
    assert_eq!(json["erased"]["phone_tenant"], 1, "{json}");
    assert_eq!(json["erased"]["tenant_profiles"], 1, "{json}");
    assert_eq!(json["erased"]["idempotency_records"], 1, "{json}");
    let audit_id = json["audit_id"].as_str().unwrap().to_owned();

    // A late status callback for the delivered message lands in its erased copy.
    let late = post_status(&stack, &status_callback(&stack, &sid, &phone, "read")).await;
    assert_eq!(late.status, 204, "{}", late.body);

    // Nothing of the number or the bodies anywhere, but the consent record.
    let consent_pk = parley::store::keys::consent_pk(&e164);
    let left = traces(&stack, &needles).await;
    assert_eq!(
        left,
        vec![(consent_pk, parley::store::keys::CONSENT_SK.to_owned())],
        "only the consent record names the number"
    );
    let consent = stack.store.consent(&e164).await.unwrap().expect("kept");
    assert_eq!(consent.history.len(), 2, "the opt-out and back in are kept");

    // The audit entry: who, when, a pseudonym, the counts.
    let audit = stack
        .store
        .erasure_audit(&audit_id)
        .await
        .unwrap()
        .expect("audit entry");
    assert!(audit.phone_pseudonym.starts_with("p_"));
    assert!(!audit.key_id.is_empty());
    assert_eq!(audit.counts.messages, 7);

    // Message ids still answer, without a body or a number.
    for (id, status) in [
        (&sent_id, "submitted"),
        (&soon_id, "canceled"),
        (&later_id, "canceled"),
    ] {
        let reply = call(&stack, "GET", &format!("/messages/{id}"), &stack.api_key).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let m: Value = reply.json();
        assert_eq!(m["erased"], true, "{m}");
        assert_eq!(m["body"], Value::Null);
        assert_eq!(m["status"], status, "{m}");
    }
    let delivered = call(
        &stack,
        "GET",
        &format!("/messages/{sent_id}"),
        &stack.api_key,
    )
    .await;
    assert_eq!(
        delivered.json()["delivery_status"],
        "read",
        "the late callback applied to the erased copy"
    );
    let thread = call(
        &stack,
        "GET",
        &format!("/conversations/{}", encode(&phone)),
        &stack.api_key,
    )
    .await;
    assert_eq!(thread.status, 404);

    // Idempotent: a second erasure finds nothing and says so.
    let again = call(&stack, "DELETE", &path, &stack.api_key).await;
    assert_eq!(again.status, 200, "{}", again.body);
    for (name, count) in again.json()["erased"].as_object().unwrap() {
        assert_eq!(count, 0, "{name}");
    }

    // The queued message's job comes due and sends nothing; only the delivered one was sent.
    let wait = Timestamp::now().until(soon_at) + Duration::from_secs(8);
    tokio::time::sleep(wait).await;
    let calls = stack.sandbox_calls(&phone).await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(stack
        .sandbox_messages_with(&phone, &soon_body)
        .await
        .is_empty());
    assert!(stack
        .sandbox_messages_with(&phone, &later_body)
        .await
        .is_empty());
    assert_eq!(
        traces(&stack, &needles).await.len(),
        1,
        "nothing came back after the due time"
    );
}
