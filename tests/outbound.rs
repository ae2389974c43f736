//! Sending end to end: `POST /sms/send` → SQS → send worker → Twilio sandbox → signed status
//! callbacks → the store, with each failure kind the worker must handle.

use parley::delivery::DeliveryStatus;
use parley_e2e::*;
use serde_json::{json, Value};

/// Sends and returns (message_id, response JSON).
async fn send(stack: &Stack, to: &str, body: &str) -> (String, Value) {
    let reply = stack.send(&json!({"to": to, "body": body}), None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let json = reply.json();
    (json["message_id"].as_str().unwrap().to_owned(), json)
}

/// The message once Twilio's status is `status` and the worker has recorded the SID (a
/// callback naming the message by id can bring the status before the worker's record).
async fn settled(
    stack: &Stack,
    to: &str,
    id: &str,
    status: DeliveryStatus,
    seconds: u64,
) -> parley::store::Message {
    eventually(seconds, &format!("{status:?}"), || async {
        use parley::pipeline::PipelineState::{Queued, Sending};
        stack
            .outbound(to, id)
            .await
            .filter(|m| m.delivery_status == Some(status) && !matches!(m.status, Queued | Sending))
    })
    .await
}

#[tokio::test]
async fn a_text_is_sent_and_its_callbacks_move_it_to_delivered() {
    let stack = stack().await;
    let to = unique_phone();
    let body = unique_body("Your maintenance visit is confirmed for tomorrow");
    let (id, response) = send(&stack, &to, &body).await;
    assert_eq!(response["status"], "queued");
    assert_eq!(
        (response["segments"].as_u64(), response["encoding"].as_str()),
        (Some(1), Some("GSM-7"))
    );
    assert!(response["conversation_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));

    let m = settled(&stack, &to, &id, DeliveryStatus::Delivered, 20).await;
    assert_eq!(m.status, parley::pipeline::PipelineState::Submitted);
    assert_eq!(
        m.gsi2pk, None,
        "a final status takes it out of the due index"
    );
    assert!(m.twilio_sid.as_deref().is_some_and(|s| s.starts_with("SM")));
    let history: Vec<_> = m
        .status_history
        .iter()
        .map(|h| (h.status.as_str(), h.source.as_str()))
        .collect();
    for expected in [
        ("queued", "api"),
        ("sent", "callback"),
        ("delivered", "callback"),
    ] {
        assert!(history.contains(&expected), "{history:?}");
    }
    let at_twilio = stack.sandbox_messages_with(&to, &body).await;
    assert_eq!(at_twilio.len(), 1);
    assert_eq!(at_twilio[0]["create_calls"], 1);
    let sid = parley::twilio::MessageSid::parse(m.twilio_sid.as_deref().unwrap()).unwrap();
    let guard = stack.store.sid_guard(&sid).await.unwrap().unwrap();
    assert_eq!(guard.message_id.as_deref(), Some(id.as_str()));

    let conversation = stack
        .store
        .conversation(
            parley::phone::Channel::Sms,
            &parley::phone::E164::parse(&to).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (conversation.outbound_count, conversation.message_count),
        (1, 1)
    );
    assert_eq!(conversation.conversation_id, response["conversation_id"]);
}

#[tokio::test]
async fn invalid_requests_are_400_with_per_field_errors_and_auth_is_required() {
    let stack = stack().await;
    let cases = [
        (json!({"body": "hi"}), vec!["to"]),
        (json!({"to": "not a number", "body": "hi"}), vec!["to"]),
        (json!({"to": "+14155552671", "body": ""}), vec!["body"]),
        (json!({"to": "+14155552671", "body": "   "}), vec!["body"]),
        (
            json!({"to": "+14155552671", "body": "x".repeat(1601)}),
            vec!["body"],
        ),
        (
            json!({"to": "123", "body": "x".repeat(1601)}),
            vec!["to", "body"],
        ),
        (
            json!({"to": "+14155552671", "body": "hi", "media_urls": ["ftp://x"]}),
            vec!["media_urls"],
        ),
        (
            json!({"to": "+14155552671", "body": "hi", "color": "red"}),
            vec!["request"],
        ),
        (
            json!({"to": ["+14155552671"], "body": 7}),
            vec!["to", "body"],
        ),
    ];
    for (request, fields) in cases {
        let reply = stack.send(&request, None).await;
        assert_eq!(reply.status, 400, "{request}: {}", reply.body);
        let error = &reply.json()["error"];
        assert_eq!(error["code"], "validation_failed", "{request}");
        for field in fields {
            assert!(
                error["fields"][field]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{request}: {error}"
            );
        }
    }
    for (body, status, code) in [
        ("not json", 400, "invalid_json"),
        ("[1,2]", 400, "invalid_json"),
    ] {
        let reply = stack.send_raw(body, Some(&stack.api_key)).await;
        assert_eq!(
            (reply.status, reply.json()["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }
    let ok = r#"{"to":"+14155552671","body":"hi"}"#;
    for key in [None, Some("wrong")] {
        let reply = stack.send_raw(ok, key).await;
        assert_eq!(reply.status, 401, "{key:?}");
    }
}

#[tokio::test]
async fn segments_and_encoding_follow_the_carriers_rules() {
    let stack = stack().await;
    let to = unique_phone();
    for (body, segments, encoding) in [
        ("a".repeat(160), 1, "GSM-7"),
        ("a".repeat(161), 2, "GSM-7"),
        (format!("{}€", "a".repeat(159)), 2, "GSM-7"),
        (format!("{}ç", "a".repeat(69)), 1, "UCS-2"),
        (format!("{}👍", "a".repeat(69)), 2, "UCS-2"),
    ] {
        let reply = stack.send(&json!({"to": to, "body": body}), None).await;
        let json = reply.json();
        assert_eq!(
            (json["segments"].as_u64(), json["encoding"].as_str()),
            (Some(segments), Some(encoding)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_answer_and_refuses_another_body() {
    let stack = stack().await;
    let to = unique_phone();
    let body = unique_body("Rent reminder: payment due on the 1st");
    let key = format!("test-{}", ulid::Ulid::new());
    let request =
        json!({"to": to, "body": body, "workflow_type": "collections", "workflow_id": "inv-1"});
    let first = stack.send(&request, Some(&key)).await;
    let again = stack.send(&request, Some(&key)).await;
    assert_eq!(first.status, 202);
    assert_eq!((again.status, again.json()), (202, first.json()));

    let other = stack
        .send(&json!({"to": to, "body": "something else"}), Some(&key))
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(other.json()["error"]["code"], "idempotency_key_reused");

    let id = first.json()["message_id"].as_str().unwrap().to_owned();
    settled(&stack, &to, &id, DeliveryStatus::Delivered, 20).await;
    let e164 = parley::phone::E164::parse(&to).unwrap();
    let messages = stack
        .store
        .messages(parley::phone::Channel::Sms, &e164, 10)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1, "one message for the key");
    assert_eq!(
        stack.sandbox_messages_with(&to, &body).await[0]["create_calls"],
        1
    );
    let conversation = stack
        .store
        .conversation(parley::phone::Channel::Sms, &e164)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.workflow_type.as_deref(), Some("collections"));

    let bad_key = stack.send(&request, Some("has spaces")).await;
    assert_eq!(bad_key.status, 400);
}

#[tokio::test]
async fn an_opted_out_number_is_refused_until_it_texts_start() {
    let stack = stack().await;
    let to = unique_phone();
    assert_eq!(
        stack
            .post_inbound(&InboundForm::new(&stack, &to, "STOP"))
            .await
            .status,
        200
    );
    let refused = stack
        .send(&json!({"to": to, "body": "Are you still there?"}), None)
        .await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json()["error"]["code"], "recipient_opted_out");
    assert!(
        stack.sandbox_messages(&to).await.is_empty(),
        "nothing reached Twilio"
    );

    assert_eq!(
        stack
            .post_inbound(&InboundForm::new(&stack, &to, "START"))
            .await
            .status,
        200
    );
    let (id, _) = send(
        &stack,
        &to,
        &unique_body("Welcome back, here is your update"),
    )
    .await;
    settled(&stack, &to, &id, DeliveryStatus::Delivered, 20).await;
}

#[tokio::test]
async fn a_transient_failure_is_retried_until_it_succeeds() {
    let stack = stack().await;
    let to = unique_phone();
    stack
        .sandbox_control(
            "faults",
            json!({"to": to, "kind": "rate_limited", "count": 1}),
        )
        .await;
    stack
        .sandbox_control(
            "faults",
            json!({"to": to, "kind": "server_error", "count": 1}),
        )
        .await;
    let body = unique_body("Your lease renewal is ready to sign");
    let (id, _) = send(&stack, &to, &body).await;
    let m = settled(&stack, &to, &id, DeliveryStatus::Delivered, 30).await;
    assert_eq!(m.attempts, 3);
    let calls = stack.sandbox_calls(&to).await;
    let outcomes: Vec<_> = calls
        .iter()
        .map(|c| c["outcome"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(outcomes, ["error:20429", "error:20500", "created"]);
}

#[tokio::test]
async fn permanent_failures_fail_at_once_and_are_never_retried() {
    let stack = stack().await;
    for (to, code) in [
        ("+15005550001", "21211"),
        ("+15005550009", "21614"),
        ("+15005550003", "21408"),
    ] {
        let body = unique_body("A notice for a number Twilio refuses");
        let (id, _) = send(&stack, to, &body).await;
        let m = settled(&stack, to, &id, DeliveryStatus::Failed, 20).await;
        assert_eq!(
            (m.status.as_str(), m.error_code.as_deref()),
            ("failed", Some(code)),
            "{to}"
        );
        assert_eq!(m.attempts, 1, "{to}");
    }
    // Give a wrongly scheduled retry time to happen, then check it did not.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    for to in ["+15005550001", "+15005550009", "+15005550003"] {
        let calls = stack.sandbox_calls(to).await;
        let ours: Vec<_> = calls
            .iter()
            .filter(|c| {
                c["body"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("A notice for a number Twilio refuses"))
            })
            .collect();
        assert!(
            ours.iter()
                .all(|c| c["outcome"].as_str().unwrap().starts_with("error:")),
            "{to}"
        );
    }
}

#[tokio::test]
async fn twilio_21610_fails_the_message_and_opts_the_number_out() {
    let stack = stack().await;
    let to = "+15005550004";
    let (id, _) = send(
        &stack,
        to,
        &unique_body("A message to an unsubscribed number"),
    )
    .await;
    let m = settled(&stack, to, &id, DeliveryStatus::Failed, 40).await;
    assert_eq!(m.error_code.as_deref(), Some("21610"));
    let consent = stack
        .store
        .consent(&parley::phone::E164::parse(to).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(consent.opted_out);
    assert_eq!(consent.keyword, "TWILIO_21610");
    let refused = stack.send(&json!({"to": to, "body": "again"}), None).await;
    assert_eq!(refused.status, 409);
}

#[tokio::test]
async fn exhausted_retries_fail_the_message_and_the_job_lands_in_the_dead_letter_queue() {
    let stack = stack().await;
    let to = unique_phone();
    stack
        .sandbox_control(
            "faults",
            json!({"to": to, "kind": "server_error", "count": 20}),
        )
        .await;
    let (id, _) = send(&stack, &to, &unique_body("This one will never get through")).await;
    let m = settled(&stack, &to, &id, DeliveryStatus::Failed, 90).await;
    assert_eq!(
        (m.status.as_str(), m.error_code.as_deref(), m.attempts),
        ("failed", Some("20500"), 5)
    );

    let dlq = stack.queue_url("SendDeadLetterQueue").await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let found = eventually(30, "the job in the dead-letter queue", || async {
        let out = sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .ok()?;
        out.messages?
            .into_iter()
            .find(|msg| msg.body.as_deref().is_some_and(|b| b.contains(&id)))
    })
    .await;
    assert!(found.body.unwrap().contains(&id));
    let creates = stack.sandbox_calls(&to).await.len();
    assert_eq!(creates, 5, "one Twilio call per attempt");

    // The runbook's redrive (docs/runbooks.md): the job goes back to the send queue, and the
    // worker drops it, since its message already ended: nothing is sent again.
    let moved = parley_local_ok(&["redrive", "SendQueue"]);
    assert!(
        moved.contains("SendDeadLetterQueue → SendQueue:"),
        "{moved}"
    );
    assert!(!moved.contains(": 0 moved"), "{moved}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        stack.sandbox_calls(&to).await.len(),
        5,
        "no new Twilio call"
    );
    let after = stack.outbound(&to, &id).await.unwrap();
    assert_eq!(after.status.as_str(), "failed");
}

#[tokio::test]
async fn a_timeout_after_twilio_accepted_is_reconciled_not_sent_twice() {
    let stack = stack().await;
    let to = unique_phone();
    // Twilio takes the message but answers after the worker's 2 s timeout.
    stack
        .sandbox_control(
            "faults",
            json!({"to": to, "kind": "accept_then_timeout", "count": 1, "delay_ms": 3000}),
        )
        .await;
    let body = unique_body("Your package is at the front desk");
    let (id, _) = send(&stack, &to, &body).await;
    let m = settled(&stack, &to, &id, DeliveryStatus::Delivered, 30).await;
    assert!(m.attempts >= 2, "the first attempt timed out");
    let at_twilio = stack.sandbox_messages_with(&to, &body).await;
    assert_eq!(at_twilio.len(), 1, "exactly one message at Twilio");
    assert_eq!(at_twilio[0]["create_calls"], 1, "no second create call");
    assert_eq!(
        Some(at_twilio[0]["sid"].as_str().unwrap()),
        m.twilio_sid.as_deref()
    );
}

#[tokio::test]
async fn a_timeout_before_twilio_accepted_is_sent_again_once() {
    let stack = stack().await;
    let to = unique_phone();
    stack
        .sandbox_control(
            "faults",
            json!({"to": to, "kind": "slow", "count": 1, "delay_ms": 3000}),
        )
        .await;
    let body = unique_body("Reminder: inspection on Friday");
    let (id, _) = send(&stack, &to, &body).await;
    settled(&stack, &to, &id, DeliveryStatus::Delivered, 30).await;
    assert_eq!(
        stack.sandbox_messages_with(&to, &body).await.len(),
        1,
        "exactly one message at Twilio"
    );
}

#[tokio::test]
async fn an_identical_text_sent_earlier_is_not_taken_for_an_ambiguous_attempt() {
    let stack = stack().await;
    let to = unique_phone();
    let body = unique_body("Your appointment is tomorrow at 10");
    // The same text to the same number, sent and recorded a moment ago.
    let (first, _) = send(&stack, &to, &body).await;
    let first = settled(&stack, &to, &first, DeliveryStatus::Delivered, 20).await;
    // The next one's first attempt times out before Twilio creates anything.
    stack
        .sandbox_control(
            "faults",
            json!({"to": to, "kind": "slow", "count": 1, "delay_ms": 3000}),
        )
        .await;
    let (second, _) = send(&stack, &to, &body).await;
    let second = settled(&stack, &to, &second, DeliveryStatus::Delivered, 30).await;
    assert!(second.attempts >= 2, "the first attempt timed out");
    assert_ne!(
        second.twilio_sid, first.twilio_sid,
        "the earlier message's SID is recorded for it: not this one's"
    );
    let at_twilio = stack.sandbox_messages_with(&to, &body).await;
    assert_eq!(at_twilio.len(), 2, "each text sent exactly once");
    let created: Vec<_> = stack
        .sandbox_calls(&to)
        .await
        .into_iter()
        .filter(|c| c["outcome"] == "created")
        .collect();
    assert_eq!(created.len(), 2);
}

#[tokio::test]
async fn an_ambiguous_attempt_still_queued_at_twilio_is_found_not_sent_again() {
    let stack = stack().await;
    let to = unique_phone();
    // Twilio keeps the message queued (no DateSent yet) and answers after the timeout.
    stack
        .sandbox_control("callbacks", json!({"to": to, "sequence": ["queued"]}))
        .await;
    stack
        .sandbox_control(
            "faults",
            json!({"to": to, "kind": "accept_then_timeout", "count": 1, "delay_ms": 3000}),
        )
        .await;
    let body = unique_body("Your rent receipt is ready");
    let (id, _) = send(&stack, &to, &body).await;
    let m = eventually(30, "submitted", || async {
        stack
            .outbound(&to, &id)
            .await
            .filter(|m| m.status == parley::pipeline::PipelineState::Submitted)
    })
    .await;
    assert!(m.attempts >= 2, "the first attempt timed out");
    let at_twilio = stack.sandbox_messages_with(&to, &body).await;
    assert_eq!(at_twilio.len(), 1, "exactly one message at Twilio");
    assert_eq!(at_twilio[0]["status"], "queued");
    assert_eq!(at_twilio[0]["date_sent"], Value::Null);
    assert_eq!(at_twilio[0]["create_calls"], 1, "no second create call");
    assert_eq!(at_twilio[0]["sid"].as_str(), m.twilio_sid.as_deref());
}

#[tokio::test]
async fn each_text_names_its_message_in_its_status_callback_url() {
    let stack = stack().await;
    let to = unique_phone();
    let body = unique_body("Your lease renewal is ready to sign");
    let (id, _) = send(&stack, &to, &body).await;
    let m = settled(&stack, &to, &id, DeliveryStatus::Delivered, 20).await;
    let calls = stack.sandbox_calls(&to).await;
    // And the trace it was sent in (the gateway gives every request one), and the connection
    // overrides that make Twilio retry a refused callback.
    let trace = m.trace.expect("the message's trace");
    let expected = format!(
        "{}{}?m={id}&t={}#{}",
        stack.public_base_url,
        parley::handlers::status_callback::ROUTE,
        trace.root(),
        parley::twilio::overrides::WEBHOOK_OVERRIDES
    );
    assert_eq!(
        calls[0]["status_callback"].as_str(),
        Some(expected.as_str())
    );
    // The callbacks went to that URL (signed with the fragment) and were accepted.
    let at_twilio = stack.sandbox_messages_with(&to, &body).await;
    let answers: Vec<_> = at_twilio[0]["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["response_status"].as_u64())
        .collect();
    assert!(!answers.is_empty());
    assert!(answers.iter().all(|a| *a == Some(204)), "{answers:?}");
}

/// Reconciliation reads every page of the list: the attempt's message is found behind newer
/// ones (a page size of 2 puts it on the fourth page), and nothing else is taken for it.
#[tokio::test]
async fn reconciliation_finds_the_attempt_on_a_later_page() {
    use parley::twilio::client::{Attempted, Sender, TwilioClient};
    let stack = stack().await;
    let to = unique_phone();
    let body = unique_body("Your deposit was received");
    let since = time::OffsetDateTime::now_utc() - std::time::Duration::from_secs(5);
    let http = reqwest::Client::new();
    let create = |from: &'static str, text: String| {
        let http = http.clone();
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            stack.sandbox(),
            stack.account_sid
        );
        let (account, token, to) = (stack.account_sid.clone(), stack.token.clone(), to.clone());
        async move {
            let reply = http
                .post(url)
                .basic_auth(account, Some(token))
                .form(&[("To", to.as_str()), ("From", from), ("Body", text.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 201);
            reply.json::<Value>().await.unwrap()["sid"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let ours = create(TWILIO_NUMBER, body.clone()).await;
    for i in 0..6 {
        create(TWILIO_NUMBER, format!("{body} ({i})")).await;
    }
    // The same text from another of the account's numbers: not ours.
    create("+14155550199", body.clone()).await;
    let (_, secrets) = stack.own_secrets(&stack.token, None).await;
    let client = TwilioClient::new(
        &stack.sandbox(),
        Sender::Number(TWILIO_NUMBER.into()),
        std::time::Duration::from_secs(5),
    )
    .unwrap()
    .with_list_page_size(2);
    let found = client
        .find_attempts(
            &secrets.current(),
            &Attempted {
                to: &to,
                body: &body,
                since,
            },
        )
        .await
        .unwrap();
    let sids: Vec<_> = found.iter().map(|m| m.sid.as_str()).collect();
    assert_eq!(sids, [ours.as_str()]);
    // Created later than the attempt's claim: nothing found.
    let later = Attempted {
        to: &to,
        body: &body,
        since: time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(60),
    };
    assert!(client
        .find_attempts(&secrets.current(), &later)
        .await
        .unwrap()
        .is_empty());
}
