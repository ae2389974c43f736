//! The inbound webhook end to end: signed HTTP requests to the local gateway, results read
//! back from the emulator's DynamoDB.

use aws_sdk_dynamodb::types::AttributeValue;
use parley::language::Language;
use parley::phone::{Channel, E164};
use parley::store::{Conversation, Direction, Message};
use parley_e2e::*;

async fn thread(
    stack: &Stack,
    channel: Channel,
    phone: &str,
) -> (Option<Conversation>, Vec<Message>) {
    let e164 = E164::parse(phone).unwrap();
    let conversation = stack.store.conversation(channel, &e164).await.unwrap();
    let messages = stack.store.messages(channel, &e164, 100).await.unwrap();
    (conversation, messages)
}

const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#;

#[tokio::test]
async fn a_signed_message_is_stored_once_with_its_conversation_and_guard() {
    let stack = stack().await;
    let phone = unique_phone();
    let body = unique_body("My sink is leaking again, can someone come take a look tomorrow?");
    let form = InboundForm::new(&stack, &phone, &body);

    let reply = stack.post_inbound(&form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type, "text/xml");
    assert_eq!(reply.body, EMPTY_TWIML);

    let (conversation, messages) = thread(&stack, Channel::Sms, &phone).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(stack.store.body_of(m).await.unwrap(), body);
    assert!(
        !m.body.stored().contains(&body) && m.body.sealed_value().is_some(),
        "stored sealed"
    );
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.channel, Channel::Sms);
    assert_eq!(m.twilio_sid.as_deref(), Some(form.get("MessageSid")));
    assert_eq!(m.account_sid.as_deref(), Some(stack.account_sid.as_str()));
    assert_eq!(m.from_e164.as_ref().map(E164::as_str), Some(phone.as_str()));
    assert_eq!(m.from_original, phone);
    assert_eq!(m.to_e164.as_str(), TWILIO_NUMBER);
    assert_eq!(m.language, Language::En);
    assert!(m.language_confidence > 0.0);
    assert_eq!(m.status, parley::pipeline::PipelineState::Received);
    assert_eq!(m.num_media, 0);
    assert_eq!(m.keyword, None);
    let raw = m.raw_payload.as_ref().expect("raw payload kept");
    assert_eq!(
        stack.store.open(raw, &m.message_id).await.unwrap(),
        form.encode(),
        "raw payload kept verbatim"
    );
    assert!(raw.sealed_value().is_some(), "and sealed");

    let c = conversation.expect("conversation created");
    assert_eq!(
        (c.message_count, c.inbound_count, c.outbound_count),
        (1, 1, 0)
    );
    assert_eq!(c.language, Some(Language::En));
    assert_eq!(
        c.tenant_id, None,
        "unknown numbers are stored without a tenant"
    );
    assert_eq!(c.last_message_at, m.created_at.to_string());
    assert_eq!(c.phone.as_str(), phone);

    let guard = stack
        .store
        .sid_guard(&form.sid())
        .await
        .unwrap()
        .expect("SID guard");
    assert_eq!(guard.message_id.as_deref(), Some(m.message_id.as_str()));
}

#[tokio::test]
async fn a_sequential_replay_writes_nothing_and_answers_exactly_like_the_first() {
    let stack = stack().await;
    let phone = unique_phone();
    let form = InboundForm::new(&stack, &phone, "HELP");
    let first = stack.post_inbound(&form).await;
    let second = stack.post_inbound(&form).await;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("<Message>"), "{}", first.body);
    assert_eq!(
        (second.status, &second.content_type, &second.body),
        (first.status, &first.content_type, &first.body)
    );

    let (conversation, messages) = thread(&stack, Channel::Sms, &phone).await;
    assert_eq!(messages.len(), 1);
    let c = conversation.unwrap();
    assert_eq!((c.message_count, c.inbound_count), (1, 1));
}

#[tokio::test]
async fn fifty_concurrent_duplicates_store_one_message_and_count_it_once() {
    let stack = stack().await;
    let phone = unique_phone();
    let body = unique_body("Ya pagué la renta de este mes, por favor revisen sus registros.");
    let form = InboundForm::new(&stack, &phone, &body);
    let replies = futures::future::join_all((0..50).map(|_| stack.post_inbound(&form))).await;
    for r in &replies {
        assert_eq!((r.status, r.body.as_str()), (200, EMPTY_TWIML));
    }
    let (conversation, messages) = thread(&stack, Channel::Sms, &phone).await;
    assert_eq!(messages.len(), 1, "exactly one message");
    let c = conversation.unwrap();
    assert_eq!(
        (c.message_count, c.inbound_count),
        (1, 1),
        "counters bumped once"
    );
}

#[tokio::test]
async fn bad_signatures_are_refused_with_403_and_store_nothing() {
    let stack = stack().await;
    let phone = unique_phone();
    let form = InboundForm::new(&stack, &phone, "Is the office open on Saturday?");
    let url = stack.inbound_url();
    let good = form.signature(&stack.token, &url);

    let tampered = form.clone().set("Body", "Is the office open on Sunday?");
    let host_based = form.signature(&stack.token, &url.replace("127.0.0.1", "localhost"));
    let cases = [
        (
            "tampered body",
            stack.post_inbound_raw(tampered.encode(), Some(&good)).await,
            "invalid_signature",
        ),
        (
            "missing",
            stack.post_inbound_raw(form.encode(), None).await,
            "missing_signature",
        ),
        (
            "empty",
            stack.post_inbound_raw(form.encode(), Some("")).await,
            "missing_signature",
        ),
        (
            "wrong token",
            stack
                .post_inbound_raw(form.encode(), Some(&form.signature("not-the-token", &url)))
                .await,
            "invalid_signature",
        ),
        (
            "another URL",
            stack
                .post_inbound_raw(form.encode(), Some(&host_based))
                .await,
            "invalid_signature",
        ),
    ];
    for (case, reply, code) in cases {
        assert_eq!(reply.status, 403, "{case}: {}", reply.body);
        assert_eq!(reply.json()["error"]["code"], code, "{case}");
    }
    assert!(stack.store.sid_guard(&form.sid()).await.unwrap().is_none());
    let (conversation, messages) = thread(&stack, Channel::Sms, &phone).await;
    assert!(conversation.is_none() && messages.is_empty());
}

#[tokio::test]
async fn the_previous_token_and_the_default_port_form_are_accepted() {
    let stack = stack().await;
    let url = stack.inbound_url();

    let rotated = InboundForm::new(&stack, &unique_phone(), "Thanks!");
    let sig = rotated.signature(&stack.previous_token, &url);
    assert_eq!(
        stack
            .post_inbound_raw(rotated.encode(), Some(&sig))
            .await
            .status,
        200
    );

    // Our public URL has an explicit port; Twilio may have signed it without one.
    let portless = url.replacen(
        &format!(":{}", stack.env.get("LOCAL_GATEWAY_PORT").unwrap()),
        "",
        1,
    );
    assert_ne!(portless, url);
    let form = InboundForm::new(&stack, &unique_phone(), "Thanks!");
    let sig = form.signature(&stack.token, &portless);
    assert_eq!(
        stack
            .post_inbound_raw(form.encode(), Some(&sig))
            .await
            .status,
        200
    );
    assert!(stack.store.sid_guard(&form.sid()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_webhook_for_another_account_is_refused() {
    let stack = stack().await;
    let form = InboundForm::new(&stack, &unique_phone(), "Hello there")
        .set("AccountSid", "AC11111111111111111111111111111111");
    let reply = stack.post_inbound(&form).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["code"], "account_mismatch");
    assert!(stack.store.sid_guard(&form.sid()).await.unwrap().is_none());
}

#[tokio::test]
async fn whatsapp_messages_have_their_own_channel_and_keep_media() {
    let stack = stack().await;
    let phone = unique_phone();
    let form = InboundForm::new(&stack, &format!("whatsapp:{phone}"), "")
        .set("To", &format!("whatsapp:{TWILIO_NUMBER}"))
        .set("NumMedia", "2")
        .set(
            "MediaUrl0",
            "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME0",
        )
        .set("MediaContentType0", "image/jpeg")
        .set(
            "MediaUrl1",
            "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM0/Media/ME1",
        )
        .set("MediaContentType1", "application/pdf");
    assert_eq!(stack.post_inbound(&form).await.status, 200);

    let (sms, _) = thread(&stack, Channel::Sms, &phone).await;
    assert!(
        sms.is_none(),
        "a WhatsApp message does not open an SMS conversation"
    );
    let (conversation, messages) = thread(&stack, Channel::Whatsapp, &phone).await;
    assert_eq!(conversation.unwrap().channel, Channel::Whatsapp);
    let m = &messages[0];
    assert_eq!(m.from_original, format!("whatsapp:{phone}"));
    assert_eq!(m.num_media, 2);
    assert_eq!(m.media_content_types, ["image/jpeg", "application/pdf"]);
    assert!(stack.store.media_of(m).await.unwrap()[1].ends_with("/ME1"));
}

#[tokio::test]
async fn stop_opts_out_and_start_opts_back_in_with_history() {
    let stack = stack().await;
    let phone = unique_phone();
    let e164 = E164::parse(&phone).unwrap();

    let stop = stack
        .post_inbound(&InboundForm::new(&stack, &phone, "  stop "))
        .await;
    assert_eq!(stop.status, 200);
    assert!(
        stop.body
            .contains(stack.env.get("OPT_OUT_REPLY_TEXT").unwrap()),
        "{}",
        stop.body
    );
    let consent = stack
        .store
        .consent(&e164)
        .await
        .unwrap()
        .expect("consent recorded");
    assert!(consent.opted_out);
    assert_eq!(consent.keyword, "STOP");

    let start = stack
        .post_inbound(&InboundForm::new(&stack, &phone, "Start"))
        .await;
    assert!(
        start
            .body
            .contains(stack.env.get("OPT_IN_REPLY_TEXT").unwrap()),
        "{}",
        start.body
    );
    let consent = stack.store.consent(&e164).await.unwrap().unwrap();
    assert!(!consent.opted_out);
    assert_eq!(
        consent
            .history
            .iter()
            .map(|h| (h.opted_out, h.keyword.as_str()))
            .collect::<Vec<_>>(),
        [(true, "STOP"), (false, "START")]
    );

    let (conversation, messages) = thread(&stack, Channel::Sms, &phone).await;
    assert_eq!(
        conversation.unwrap().message_count,
        2,
        "keyword messages are messages too"
    );
    let mut keywords: Vec<_> = messages.iter().filter_map(|m| m.keyword.clone()).collect();
    keywords.sort();
    assert_eq!(keywords, ["opt_in", "opt_out"]);
}

/// One confirmation per opt-out, in the language of the words used; a redelivery of the
/// opt-out is answered like the first delivery, a second opt-out not at all.
#[tokio::test]
async fn an_opt_out_is_confirmed_once_in_the_senders_language() {
    let stack = stack().await;
    let phone = unique_phone();
    let spanish = parley::config::ReplyTexts::builtin(parley::language::Language::Es);
    let form = InboundForm::new(&stack, &phone, "No me manden más mensajes, por favor");
    let first = stack.post_inbound(&form).await;
    assert!(
        first.body.contains(spanish.opt_out.as_deref().unwrap()),
        "{}",
        first.body
    );
    assert_eq!(
        stack.post_inbound(&form).await.body,
        first.body,
        "redelivery"
    );
    for again in ["STOP", "parar"] {
        let reply = stack
            .post_inbound(&InboundForm::new(&stack, &phone, again))
            .await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, EMPTY_TWIML),
            "{again}"
        );
    }
    let consent = stack
        .store
        .consent(&E164::parse(&phone).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(consent.opted_out);
    assert_eq!(consent.history.len(), 1);

    let portuguese = parley::config::ReplyTexts::builtin(parley::language::Language::Pt);
    let back = stack
        .post_inbound(&InboundForm::new(&stack, &phone, "Voltar"))
        .await;
    assert!(
        back.body
            .contains(&xml_text(portuguese.opt_in.as_deref().unwrap())),
        "{}",
        back.body
    );
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[tokio::test]
async fn every_opt_out_and_opt_in_keyword_is_honoured() {
    let stack = stack().await;
    for (word, opted_out) in [
        ("STOP", true),
        ("STOPALL", true),
        ("UNSUBSCRIBE", true),
        ("cancel", true),
        ("End", true),
        ("QUIT", true),
        ("REVOKE", true),
        ("OPTOUT", true),
        ("START", false),
        ("YES", false),
        ("unstop", false),
    ] {
        let phone = unique_phone();
        if !opted_out {
            // Opting in is a change only for a number that opted out.
            stack
                .post_inbound(&InboundForm::new(&stack, &phone, "STOP"))
                .await;
        }
        let reply = stack
            .post_inbound(&InboundForm::new(&stack, &phone, word))
            .await;
        assert_eq!(reply.status, 200, "{word}");
        let consent = stack
            .store
            .consent(&E164::parse(&phone).unwrap())
            .await
            .unwrap();
        assert_eq!(consent.map(|c| c.opted_out), Some(opted_out), "{word}");
    }
}

#[tokio::test]
async fn help_and_info_answer_with_the_help_text_and_leave_consent_alone() {
    let stack = stack().await;
    let help = stack
        .env
        .get("HELP_REPLY_TEXT")
        .unwrap()
        .replace('&', "&amp;");
    for word in ["HELP", "info"] {
        let phone = unique_phone();
        let reply = stack
            .post_inbound(&InboundForm::new(&stack, &phone, word))
            .await;
        assert!(reply.body.contains(&help), "{word}: {}", reply.body);
        assert!(stack
            .store
            .consent(&E164::parse(&phone).unwrap())
            .await
            .unwrap()
            .is_none());
    }
    let plain = stack
        .post_inbound(&InboundForm::new(&stack, &unique_phone(), "help me please"))
        .await;
    assert_eq!(
        plain.body, EMPTY_TWIML,
        "a keyword inside a sentence is not a keyword"
    );
}

#[tokio::test]
async fn languages_are_detected_and_an_unsure_message_keeps_the_conversation_language() {
    let stack = stack().await;
    for (text, language) in [
        (
            "I already paid the rent for this month, please check your records.",
            Language::En,
        ),
        (
            "Mi fregadero está goteando otra vez, ¿pueden venir mañana a revisarlo?",
            Language::Es,
        ),
        (
            "A minha pia está vazando de novo, alguém pode vir amanhã dar uma olhada?",
            Language::Pt,
        ),
        ("Sí", Language::Es),
        ("Sim", Language::Pt),
    ] {
        let phone = unique_phone();
        let body = if text.len() > 12 {
            unique_body(text)
        } else {
            text.to_owned()
        };
        stack
            .post_inbound(&InboundForm::new(&stack, &phone, &body))
            .await;
        let (conversation, messages) = thread(&stack, Channel::Sms, &phone).await;
        assert_eq!(messages[0].language, language, "{text}");
        assert_eq!(conversation.unwrap().language, Some(language), "{text}");
    }

    let phone = unique_phone();
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "👍"))
        .await;
    let (conversation, messages) = thread(&stack, Channel::Sms, &phone).await;
    assert_eq!(messages[0].language, Language::Unknown);
    assert_eq!(conversation.unwrap().language, None);

    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "Gracias"))
        .await;
    stack
        .post_inbound(&InboundForm::new(&stack, &phone, "ok"))
        .await;
    let (conversation, _) = thread(&stack, Channel::Sms, &phone).await;
    let c = conversation.unwrap();
    assert_eq!(
        c.language,
        Some(Language::Es),
        "\"ok\" does not erase what \"Gracias\" established"
    );
    assert_eq!(c.message_count, 3);
}

#[tokio::test]
async fn malformed_requests_are_client_errors_never_server_errors() {
    let stack = stack().await;
    let url = stack.inbound_url();
    let form = InboundForm::new(&stack, &unique_phone(), "Hello");
    let signed_without = |key: &str| {
        // Twilio repeats the SID as SmsMessageSid/SmsSid; the handler accepts those too.
        let f = match key {
            "MessageSid" => form
                .clone()
                .without(key)
                .without("SmsMessageSid")
                .without("SmsSid"),
            _ => form.clone().without(key),
        };
        let sig = f.signature(&stack.token, &url);
        (f.encode(), sig)
    };

    let mut cases: Vec<(String, Reply, u16, &str)> = Vec::new();
    let bad_percent = format!("{}&Body=100%", form.clone().without("Body").encode());
    cases.push((
        "bad percent-encoding".into(),
        stack.post_inbound_raw(bad_percent, Some("x")).await,
        400,
        "malformed_body",
    ));
    let mut invalid_utf8 = form.encode().into_bytes();
    invalid_utf8.extend_from_slice(b"&Extra=\xff\xfe");
    cases.push((
        "invalid UTF-8".into(),
        stack.post_inbound_raw(invalid_utf8, Some("x")).await,
        400,
        "malformed_body",
    ));
    let escaped_invalid_utf8 = format!("{}&Extra=%FF%FE", form.encode());
    cases.push((
        "escaped invalid UTF-8".into(),
        stack
            .post_inbound_raw(escaped_invalid_utf8, Some("x"))
            .await,
        400,
        "malformed_body",
    ));
    for key in ["From", "To", "MessageSid", "AccountSid"] {
        let (body, sig) = signed_without(key);
        cases.push((
            format!("missing {key}"),
            stack.post_inbound_raw(body, Some(&sig)).await,
            400,
            "invalid_webhook",
        ));
    }
    let bad_from = form.clone().set("From", "not-a-number");
    let sig = bad_from.signature(&stack.token, &url);
    cases.push((
        "invalid From".into(),
        stack.post_inbound_raw(bad_from.encode(), Some(&sig)).await,
        400,
        "invalid_webhook",
    ));
    let huge = format!("{}&Pad={}", form.encode(), "a".repeat(1024 * 1024));
    cases.push((
        "1 MB body".into(),
        stack.post_inbound_raw(huge, Some("x")).await,
        413,
        "payload_too_large",
    ));
    cases.push((
        "not a form".into(),
        stack.post_inbound_raw("{\"json\": true}", Some("x")).await,
        403,
        "invalid_signature",
    ));
    cases.push((
        "empty body".into(),
        stack.post_inbound_raw("", Some("x")).await,
        403,
        "invalid_signature",
    ));

    for (case, reply, status, code) in cases {
        assert_eq!(reply.status, status, "{case}: {}", reply.body);
        assert_eq!(reply.content_type, "application/json", "{case}");
        assert_eq!(
            reply.json()["error"]["code"],
            code,
            "{case}: {}",
            reply.body
        );
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{case}"
        );
    }
    assert!(stack.store.sid_guard(&form.sid()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_failure_inside_the_write_is_a_5xx_and_leaves_no_partial_write() {
    let stack = stack().await;
    let phone = unique_phone();
    let e164 = E164::parse(&phone).unwrap();
    // A conversation whose counter is not a number makes the transaction's ADD fail.
    let dynamodb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    dynamodb
        .put_item()
        .table_name(stack.store.table())
        .item("pk", AttributeValue::S(format!("CONV#sms#{phone}")))
        .item("sk", AttributeValue::S("META".into()))
        .item("message_count", AttributeValue::S("corrupt".into()))
        .send()
        .await
        .unwrap();

    let form = InboundForm::new(&stack, &phone, "STOP");
    let reply = stack.post_inbound(&form).await;
    assert!(reply.status >= 500, "{}: {}", reply.status, reply.body);
    assert_eq!(reply.json()["error"]["code"], "unavailable");
    assert!(
        !reply.body.contains("corrupt") && !reply.body.contains(&phone),
        "no internals leak"
    );

    assert!(
        stack.store.sid_guard(&form.sid()).await.unwrap().is_none(),
        "no guard"
    );
    assert!(
        stack
            .store
            .messages(Channel::Sms, &e164, 10)
            .await
            .unwrap()
            .is_empty(),
        "no message"
    );
    assert!(
        stack.store.consent(&e164).await.unwrap().is_none(),
        "no consent change"
    );
}
