//! Hostile input at the webhooks (issue 11, deliverable 8): every request here is a 4xx or an
//! ignored callback — never a 5xx, and never a stored message.

use parley_e2e::*;

async fn post_webhook(
    stack: &Stack,
    route: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    signature: &str,
) -> Reply {
    let resp = stack
        .http
        .post(format!("{}{route}", stack.gateway))
        .header("content-type", content_type)
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await
        .expect("gateway reachable");
    read(resp).await
}

/// No message from `phone` was stored.
async fn nothing_stored(stack: &Stack, phone: &str) {
    let reply = stack
        .get(
            &format!("/conversations/{}", encode(phone)),
            Some(&stack.api_key),
        )
        .await;
    assert_eq!(
        reply.status, 404,
        "no conversation for {phone}: {}",
        reply.body
    );
}

#[tokio::test]
async fn hostile_inbound_requests_are_client_errors_and_store_nothing() {
    let stack = stack().await;
    let route = parley::handlers::inbound_sms::ROUTE;
    let phone = unique_phone();
    let form = InboundForm::new(&stack, &phone, &unique_body("Hostile input test"));
    let url = stack.inbound_url();
    let signed = form.signature(&stack.token, &url);
    let json = serde_json::json!({"From": phone, "To": TWILIO_NUMBER, "Body": "hi"}).to_string();

    let mut cases: Vec<(&str, Reply)> = Vec::new();
    // A JSON body, with the form's signature: Twilio signs JSON bodies through bodySHA256.
    cases.push((
        "JSON body",
        post_webhook(&stack, route, "application/json", json.clone(), &signed).await,
    ));
    cases.push((
        "JSON body sent as a form",
        post_webhook(
            &stack,
            route,
            "application/x-www-form-urlencoded",
            json,
            &signed,
        )
        .await,
    ));
    // A second From appended after signing: the signature covers every parameter.
    cases.push((
        "duplicate From",
        post_webhook(
            &stack,
            route,
            "application/x-www-form-urlencoded",
            format!("{}&From=%2B14155550199", form.encode()),
            &signed,
        )
        .await,
    ));
    cases.push((
        "%+1 in From",
        post_webhook(
            &stack,
            route,
            "application/x-www-form-urlencoded",
            format!(
                "{}&From=%+14155550199",
                form.clone().without("From").encode()
            ),
            &signed,
        )
        .await,
    ));
    cases.push((
        "signature of another URL",
        post_webhook(
            &stack,
            route,
            "application/x-www-form-urlencoded",
            form.encode(),
            &form.signature(&stack.token, &format!("{url}?x=1")),
        )
        .await,
    ));
    cases.push((
        "empty signature",
        post_webhook(
            &stack,
            route,
            "application/x-www-form-urlencoded",
            form.encode(),
            "",
        )
        .await,
    ));
    for (case, reply) in &cases {
        assert!(
            (400..500).contains(&reply.status),
            "{case}: {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.json()["error"]["code"].is_string(),
            "{case}: a JSON error: {}",
            reply.body
        );
    }
    nothing_stored(&stack, &phone).await;
}

#[tokio::test]
async fn a_flood_of_callbacks_for_unknown_sids_is_answered_and_creates_no_message() {
    let stack = stack().await;
    let route = parley::handlers::status_callback::ROUTE;
    let url = format!("{}{route}", stack.public_base_url);
    let to = unique_phone();
    let posts = (0..40).map(|i| {
        let sid = unique_sid();
        let status = ["queued", "sent", "delivered", "failed", "undelivered"][i % 5];
        let form = InboundForm { pairs: vec![] }
            .set("MessageSid", &sid)
            .set("SmsSid", &sid)
            .set("MessageStatus", status)
            .set("SmsStatus", status)
            .set("To", &to)
            .set("From", TWILIO_NUMBER)
            .set("AccountSid", &stack.account_sid)
            .set("ApiVersion", "2010-04-01");
        let signature = form.signature(&stack.token, &url);
        let stack = &stack;
        async move {
            post_webhook(
                stack,
                route,
                "application/x-www-form-urlencoded",
                form.encode(),
                &signature,
            )
            .await
        }
    });
    let replies = futures::future::join_all(posts).await;
    for reply in &replies {
        assert!(
            reply.status < 500,
            "never a 5xx: {} {}",
            reply.status,
            reply.body
        );
    }
    nothing_stored(&stack, &to).await;
}
