//! `GET /conversations/{phone_number}` and `GET /messages/{id}` over the gateway.

use parley::twilio::form::percent_encode as encode_path;
use parley_e2e::*;
use serde_json::Value;

/// `n` inbound messages from a fresh number; returns the number and the bodies, oldest first.
async fn thread(stack: &Stack, n: usize) -> (String, Vec<String>) {
    let phone = unique_phone();
    let mut bodies = Vec::new();
    for i in 0..n {
        let body = format!("message {i:02}");
        assert_eq!(
            stack
                .post_inbound(&InboundForm::new(stack, &phone, &body))
                .await
                .status,
            200
        );
        bodies.push(body);
    }
    (phone, bodies)
}

async fn get(stack: &Stack, path: &str) -> (u16, Value) {
    let reply = stack.get(path, Some(&stack.api_key)).await;
    (reply.status, reply.json())
}

#[tokio::test]
async fn pages_cover_the_thread_newest_first_with_nothing_missing_or_repeated() {
    let stack = stack().await;
    let (phone, bodies) = thread(&stack, 7).await;
    let mut seen = Vec::new();
    let mut path = format!("/conversations/{}?limit=3", encode_path(&phone));
    let mut pages = 0;
    loop {
        let (status, json) = get(&stack, &path).await;
        assert_eq!(status, 200, "{json}");
        pages += 1;
        let page = json["messages"].as_array().unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.iter().map(|m| m["body"].as_str().unwrap().to_owned()));
        match json["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!(
                    "/conversations/{}?limit=3&cursor={}",
                    encode_path(&phone),
                    encode_path(cursor)
                )
            }
            None => break,
        }
        assert!(pages < 10, "pagination must end");
    }
    let mut expected = bodies.clone();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once");
    assert!(pages >= 3);
}

#[tokio::test]
async fn every_written_form_of_the_number_finds_the_conversation() {
    let stack = stack().await;
    let (phone, _) = thread(&stack, 1).await;
    let national = &phone[2..];
    let formatted = format!(
        "+1 ({}) {}-{}",
        &national[..3],
        &national[3..6],
        &national[6..]
    );
    for form in [
        phone.clone(),
        national.to_owned(),
        format!("1{national}"),
        formatted,
    ] {
        let (status, json) = get(&stack, &format!("/conversations/{}", encode_path(&form))).await;
        assert_eq!(status, 200, "{form}: {json}");
        assert_eq!(
            json["conversation"]["phone_number"],
            phone.as_str(),
            "{form}"
        );
        assert_eq!(json["conversation"]["message_count"], 1);
        assert_eq!(json["messages"].as_array().unwrap().len(), 1);
    }
    // A raw `+` in the path is the number's plus, not a space.
    let (status, _) = get(&stack, &format!("/conversations/{phone}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn whatsapp_numbers_read_the_whatsapp_thread() {
    let stack = stack().await;
    let phone = unique_phone();
    let form = InboundForm::new(&stack, &format!("whatsapp:{phone}"), "Hola")
        .set("To", &format!("whatsapp:{TWILIO_NUMBER}"));
    stack.post_inbound(&form).await;
    let (status, json) = get(
        &stack,
        &format!(
            "/conversations/{}",
            encode_path(&format!("whatsapp:{phone}"))
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(json["conversation"]["channel"], "whatsapp");
    let (sms_status, _) = get(&stack, &format!("/conversations/{}", encode_path(&phone))).await;
    assert_eq!(sms_status, 404, "no SMS conversation");
}

#[tokio::test]
async fn the_conversation_shows_its_metadata_consent_and_language() {
    let stack = stack().await;
    let phone = unique_phone();
    stack
        .post_inbound(&InboundForm::new(
            &stack,
            &phone,
            "Mi fregadero está goteando otra vez, ¿pueden venir mañana?",
        ))
        .await;
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "STOP"))
        .await;
    let (_, json) = get(&stack, &format!("/conversations/{}", encode_path(&phone))).await;
    let c = &json["conversation"];
    assert_eq!(c["language"], "es");
    assert_eq!(c["inbound_count"], 2);
    assert_eq!(c["tenant_id"], Value::Null);
    assert_eq!(c["consent"]["opted_out"], true);
    let m = &json["messages"][0];
    assert_eq!(
        (m["direction"].as_str(), m["body"].as_str()),
        (Some("inbound"), Some("STOP"))
    );
    assert!(m["twilio_sid"]
        .as_str()
        .is_some_and(|s| s.starts_with("SM")));
}

#[tokio::test]
async fn unknown_numbers_empty_threads_bad_input_and_auth() {
    let stack = stack().await;
    let (status, json) = get(
        &stack,
        &format!("/conversations/{}", encode_path(&unique_phone())),
    )
    .await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (404, Some("conversation_not_found"))
    );

    // A conversation without messages (as a later tenant link may create) is an empty list.
    let phone = unique_phone();
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    let item = [
        ("pk", format!("CONV#sms#{phone}")),
        ("sk", "META".into()),
        ("conversation_id", ulid::Ulid::new().to_string()),
        ("channel", "sms".into()),
        ("phone", phone.clone()),
        ("created_at", parley::time::now_rfc3339()),
        ("last_message_at", parley::time::now_rfc3339()),
    ];
    let mut put = dynamodb.put_item().table_name(stack.store.table());
    for (k, v) in item {
        put = put.item(k, aws_sdk_dynamodb::types::AttributeValue::S(v));
    }
    put.send().await.unwrap();
    let (status, json) = get(&stack, &format!("/conversations/{}", encode_path(&phone))).await;
    assert_eq!(status, 200);
    assert_eq!(json["messages"], serde_json::json!([]));
    assert_eq!(json["next_cursor"], Value::Null);

    let (phone, _) = thread(&stack, 2).await;
    let base = format!("/conversations/{}", encode_path(&phone));
    let (_, first) = get(&stack, &format!("{base}?limit=1")).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (other_phone, _) = thread(&stack, 1).await;
    for (path, code) in [
        (format!("{base}?limit=0"), "invalid_limit"),
        (format!("{base}?limit=101"), "invalid_limit"),
        (format!("{base}?limit=ten"), "invalid_limit"),
        (format!("{base}?cursor=not-a-cursor"), "invalid_cursor"),
        (
            format!("{base}?cursor={}", encode_path(&cursor.replace('.', "x."))),
            "invalid_cursor",
        ),
        (
            format!(
                "/conversations/{}?cursor={}",
                encode_path(&other_phone),
                encode_path(&cursor)
            ),
            "invalid_cursor",
        ),
        (
            "/conversations/not-a-phone".to_owned(),
            "invalid_phone_number",
        ),
        ("/messages/not-an-id".to_owned(), "invalid_message_id"),
    ] {
        let (status, json) = get(&stack, &path).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (400, Some(code)),
            "{path}"
        );
    }
    assert_eq!(stack.get(&base, None).await.status, 401);
    assert_eq!(
        stack
            .get("/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV", Some("nope"))
            .await
            .status,
        401
    );
    let (status, _) = get(&stack, "/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_message_is_read_by_id_with_its_status_history() {
    let stack = stack().await;
    let to = unique_phone();
    let reply = stack
        .send(
            &serde_json::json!({"to": to, "body": unique_body("Read me back by id, please")}),
            None,
        )
        .await;
    let id = reply.json()["message_id"].as_str().unwrap().to_owned();
    let json = eventually(20, "delivered", || async {
        let (status, json) = get(&stack, &format!("/messages/{id}")).await;
        (status == 200 && json["delivery_status"] == "delivered").then_some(json)
    })
    .await;
    assert_eq!(json["direction"], "outbound");
    let history: Vec<_> = json["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap().to_owned())
        .collect();
    assert!(history.contains(&"delivered".to_owned()), "{history:?}");
}

#[tokio::test]
async fn the_sample_event_reads_a_thread() {
    use parley::handlers::conversations::ConversationsHandler;
    use parley::store::InboundRecord;
    let stack = stack().await;
    let store = stack.own_table("conversations-event").await;
    let raw = InboundForm::new(&stack, "+14155552671", "Hello").encode();
    let sms = parley::twilio::InboundSms::from_form(
        &parley::twilio::Form::parse(raw.as_bytes()).unwrap(),
    )
    .unwrap();
    store
        .record_inbound(&InboundRecord {
            sms: &sms,
            raw_payload: &raw,
            message_id: ulid::Ulid::new().to_string(),
            new_conversation_id: ulid::Ulid::new().to_string(),
            received_at: parley::time::now_rfc3339(),
            detection: parley::language::detect("Hello"),
            keyword: None,
            trace: None,
        })
        .await
        .unwrap();
    let (_, secrets) = stack.own_secrets("t", None).await;
    let handler = ConversationsHandler::new(store, secrets);
    let req = lambda_http::request::from_str(include_str!("../events/conversations.json")).unwrap();
    let (parts, body) = parley_local::apigw::response_parts(handler.handle(req).await);
    assert_eq!(
        parts.status.as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["messages"][0]["body"], "Hello");
    assert_eq!(json["conversation"]["phone_number"], "+14155552671");
}
