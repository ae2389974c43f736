//! The Messages API: resource shape, auth, validation, magic numbers, fetch and list.

use http::StatusCode;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use crate::support::*;

fn is_message_sid(value: &Value, prefix: &str) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == 34
            && s.starts_with(prefix)
            && s[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[tokio::test]
async fn create_answers_201_with_twilios_message_resource() {
    let sandbox = Sandbox::start().await;
    let before = OffsetDateTime::now_utc().unix_timestamp();
    let (status, m) = sandbox
        .create(&[
            ("To", "+14155550100"),
            ("From", FROM),
            ("Body", "Hello from Parley"),
        ])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert!(is_message_sid(&m["sid"], "SM"), "{}", m["sid"]);
    let sid = m["sid"].as_str().unwrap();
    assert_eq!(m["account_sid"], ACCOUNT);
    assert_eq!(m["to"], "+14155550100");
    assert_eq!(m["from"], FROM);
    assert_eq!(m["messaging_service_sid"], Value::Null);
    assert_eq!(m["body"], "Hello from Parley");
    assert_eq!(m["status"], "queued");
    assert_eq!(m["num_segments"], "1");
    assert_eq!(m["num_media"], "0");
    assert_eq!(m["direction"], "outbound-api");
    assert_eq!(m["api_version"], "2010-04-01");
    assert_eq!(m["date_sent"], Value::Null);
    assert_eq!(m["error_code"], Value::Null);
    assert_eq!(m["error_message"], Value::Null);
    assert_eq!(m["price"], Value::Null);
    assert_eq!(m["price_unit"], "USD");
    let created = OffsetDateTime::parse(m["date_created"].as_str().unwrap(), &Rfc2822).unwrap();
    assert!((created.unix_timestamp() - before).abs() <= 2);
    assert!(m["date_created"].as_str().unwrap().ends_with(" +0000"));
    assert_eq!(m["date_updated"], m["date_created"]);
    assert_eq!(
        m["uri"],
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json")
    );
    assert_eq!(
        m["subresource_uris"]["media"],
        format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}/Media.json")
    );
}

#[tokio::test]
async fn a_messaging_service_send_is_accepted_and_media_makes_an_mms() {
    let sandbox = Sandbox::start().await;
    let service = "MG0123456789abcdef0123456789abcdef";
    let (status, m) = sandbox
        .create(&[
            ("To", "+14155550101"),
            ("MessagingServiceSid", service),
            ("MediaUrl", "https://example.com/a.png"),
            ("MediaUrl", "https://example.com/b.png"),
        ])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(m["status"], "accepted");
    assert_eq!(m["messaging_service_sid"], service);
    assert_eq!(m["from"], Value::Null);
    assert_eq!(m["body"], "");
    assert_eq!(m["num_media"], "2");
    assert!(is_message_sid(&m["sid"], "MM"), "{}", m["sid"]);
}

#[tokio::test]
async fn long_and_unicode_bodies_count_segments() {
    let sandbox = Sandbox::start().await;
    let long = "a".repeat(161);
    let (_, m) = sandbox
        .create(&[("To", "+14155550102"), ("From", FROM), ("Body", &long)])
        .await;
    assert_eq!(m["num_segments"], "2");
    let (_, m) = sandbox
        .create(&[
            ("To", "+14155550102"),
            ("From", FROM),
            ("Body", "¡Hola! 👋"),
        ])
        .await;
    assert_eq!(m["num_segments"], "1");
    assert_eq!(m["body"], "¡Hola! 👋");
}

#[tokio::test]
async fn bad_credentials_are_refused_with_20003() {
    let sandbox = Sandbox::start().await;
    let body = form(&[("To", "+14155550103"), ("From", FROM), ("Body", "x")]);
    let attempts = [
        sandbox.http.post(sandbox.messages_url()),
        sandbox
            .http
            .post(sandbox.messages_url())
            .basic_auth(ACCOUNT, Some("wrong-token")),
        sandbox
            .http
            .post(sandbox.messages_url())
            .basic_auth("AC99999999999999999999999999999999", Some(TOKEN)),
        sandbox
            .http
            .post(sandbox.messages_url())
            .header("authorization", "Basic !!!not-base64"),
        // Right credentials, someone else's account in the path.
        sandbox
            .http
            .post(
                sandbox
                    .messages_url()
                    .replace(ACCOUNT, "AC99999999999999999999999999999999"),
            )
            .basic_auth(ACCOUNT, Some(TOKEN)),
    ];
    for request in attempts {
        let response = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(response.headers().contains_key("www-authenticate"));
        let (status, error) = json(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            error,
            json!({
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401
            })
        );
    }
    assert!(sandbox.messages_to("+14155550103").await.is_empty());
    let (status, _) = json(
        sandbox
            .http
            .get(sandbox.messages_url())
            .basic_auth(ACCOUNT, Some("wrong-token"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "reads need credentials too"
    );
}

#[tokio::test]
async fn the_error_body_is_exactly_twilios() {
    let sandbox = Sandbox::start().await;
    let (status, error) = sandbox
        .create(&[("To", "+15005550001"), ("From", FROM), ("Body", "x")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error,
        json!({
            "code": 21211,
            "message": "The 'To' number +15005550001 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400
        })
    );
}

#[tokio::test]
async fn magic_recipients_fail_with_twilios_codes() {
    let sandbox = Sandbox::start().await;
    for (to, code) in [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
        ("whatsapp:+15005550004", 21610),
        ("not-a-number", 21211),
    ] {
        let (status, error) = sandbox
            .create(&[("To", to), ("From", FROM), ("Body", "x")])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{to}");
        assert_eq!(error["code"], code, "{to}: {error}");
        assert_eq!(error["status"], 400);
        assert_eq!(
            error["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
        assert!(sandbox.messages_to(to).await.is_empty(), "{to}");
    }
    let (status, _) = sandbox
        .create(&[("To", "+15005550006"), ("From", FROM), ("Body", "x")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "other numbers are accepted");
}

#[tokio::test]
async fn magic_senders_fail_with_twilios_codes() {
    let sandbox = Sandbox::start().await;
    for (from, code) in [
        ("+15005550001", 21212),
        ("+15005550007", 21606),
        ("+15005550008", 21611),
        ("bad sender!", 21212),
    ] {
        let (status, error) = sandbox
            .create(&[("To", "+14155550104"), ("From", from), ("Body", "x")])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{from}");
        assert_eq!(error["code"], code, "{from}: {error}");
    }
    assert!(sandbox.messages_to("+14155550104").await.is_empty());
    let (status, m) = sandbox
        .create(&[
            ("To", "+14155550104"),
            ("From", "+15005550006"),
            ("Body", "x"),
        ])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
}

#[tokio::test]
async fn missing_parameters_have_their_own_codes() {
    let sandbox = Sandbox::start().await;
    let cases: [(&[(&str, &str)], u32); 4] = [
        (&[("From", FROM), ("Body", "x")], 21604),
        (&[("To", ""), ("From", FROM), ("Body", "x")], 21604),
        (&[("To", "+14155550105"), ("Body", "x")], 21603),
        (&[("To", "+14155550105"), ("From", FROM)], 21602),
    ];
    for (params, code) in cases {
        let (status, error) = sandbox.create(params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}");
        assert_eq!(error["code"], code, "{params:?}: {error}");
    }
    let too_long = "a".repeat(1601);
    let (_, error) = sandbox
        .create(&[("To", "+14155550105"), ("From", FROM), ("Body", &too_long)])
        .await;
    assert_eq!(error["code"], 21617);
}

#[tokio::test]
async fn a_malformed_form_is_a_400_not_a_crash() {
    let sandbox = Sandbox::start().await;
    let response = sandbox
        .http
        .post(sandbox.messages_url())
        .basic_auth(ACCOUNT, Some(TOKEN))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("To=%2B14155550106&Body=100%")
        .send()
        .await
        .unwrap();
    let (status, error) = json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["status"], 400);
}

#[tokio::test]
async fn fetch_returns_the_resource_or_20404() {
    let sandbox = Sandbox::start().await;
    let (_, created) = sandbox
        .create(&[("To", "+14155550107"), ("From", FROM), ("Body", "fetch me")])
        .await;
    let sid = created["sid"].as_str().unwrap();
    let (status, fetched) = sandbox.api_get(&format!("Messages/{sid}.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["sid"], sid);
    assert_eq!(fetched["body"], "fetch me");

    let missing = "SM00000000000000000000000000000000";
    let (status, error) = sandbox.api_get(&format!("Messages/{missing}.json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], 20404);
    assert_eq!(error["status"], 404);
    assert_eq!(
        error["message"],
        format!("The requested resource /2010-04-01/Accounts/{ACCOUNT}/Messages/{missing}.json was not found")
    );
    let (status, _) = sandbox.api_get(&format!("Messages/{sid}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the .json suffix is part of the path"
    );
}

#[tokio::test]
async fn list_filters_by_to_and_date_sent() {
    let sandbox = Sandbox::start().await;
    let (a, b) = ("+14155550108", "+14155550109");
    for (to, body) in [(a, "one"), (b, "other"), (a, "two")] {
        let (status, _) = sandbox
            .create(&[("To", to), ("From", FROM), ("Body", body)])
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let to_a = format!("To={}", encode(a));

    let (status, page) = sandbox.api_get(&format!("Messages.json?{to_a}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["two", "one"], "most recent first, only To={a}");
    assert_eq!(page["page"], 0);
    assert_eq!(page["page_size"], 50);
    assert_eq!(page["next_page_uri"], Value::Null);
    assert_eq!(page["previous_page_uri"], Value::Null);
    assert!(page["first_page_uri"]
        .as_str()
        .unwrap()
        .starts_with(&format!(
            "/2010-04-01/Accounts/{ACCOUNT}/Messages.json?To=%2B14155550108"
        )));
    assert!(page["uri"].as_str().unwrap().contains("Page=0"));

    let count = |page: &Value| page["messages"].as_array().unwrap().len();
    // `DateSent` filters see only messages that left Twilio: wait until these have.
    eventually(|| async {
        let (_, page) = sandbox.api_get("Messages.json").await;
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m["date_sent"].is_null())
            .then_some(())
    })
    .await;
    let (today, yesterday, tomorrow) = (utc_date(0), utc_date(-1), utc_date(1));
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?{to_a}&DateSent={today}"))
        .await;
    assert_eq!(count(&page), 2);
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?{to_a}&DateSent={yesterday}"))
        .await;
    assert_eq!(count(&page), 0);
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?{to_a}&DateSent%3E={yesterday}"))
        .await;
    assert_eq!(
        count(&page),
        2,
        "DateSent>= is inclusive and after yesterday"
    );
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?{to_a}&DateSent>={tomorrow}"))
        .await;
    assert_eq!(count(&page), 0);
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?{to_a}&DateSent<={today}"))
        .await;
    assert_eq!(count(&page), 2);
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?{to_a}&DateSent%3C={yesterday}"))
        .await;
    assert_eq!(count(&page), 0);
    let (_, page) = sandbox
        .api_get(&format!("Messages.json?DateSent={today}"))
        .await;
    assert_eq!(count(&page), 3, "no To: every recipient");

    let (status, error) = sandbox
        .api_get(&format!("Messages.json?{to_a}&DateSent=21-11-2026"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], 20001);
}

#[tokio::test]
async fn list_pages_with_page_size() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550110";
    for body in ["1", "2", "3"] {
        sandbox
            .create(&[("To", to), ("From", FROM), ("Body", body)])
            .await;
    }
    let to_q = format!("To={}", encode(to));
    let (_, first) = sandbox
        .api_get(&format!("Messages.json?{to_q}&PageSize=2"))
        .await;
    assert_eq!(first["page_size"], 2);
    assert_eq!(first["messages"].as_array().unwrap().len(), 2);
    assert_eq!(first["messages"][0]["body"], "3");
    let next = first["next_page_uri"].as_str().unwrap();
    assert!(
        next.contains("Page=1") && next.contains("PageSize=2"),
        "{next}"
    );

    let next = next.split_once("Messages.json").unwrap().1;
    let (_, second) = sandbox.api_get(&format!("Messages.json{next}")).await;
    assert_eq!(second["page"], 1);
    assert_eq!(second["messages"].as_array().unwrap().len(), 1);
    assert_eq!(second["messages"][0]["body"], "1");
    assert_eq!(second["next_page_uri"], Value::Null);
    assert!(second["previous_page_uri"]
        .as_str()
        .unwrap()
        .contains("Page=0"));
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_twilio_errors() {
    let sandbox = Sandbox::start().await;
    let (status, error) = sandbox.api_get("Calls.json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], 20404);
    let (status, error) = json(
        sandbox
            .http
            .delete(sandbox.messages_url())
            .basic_auth(ACCOUNT, Some(TOKEN))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error["code"], 20004);
}

#[tokio::test]
async fn a_queued_message_has_no_date_sent_and_no_date_sent_filter_finds_it() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550141";
    let (status, _) = sandbox
        .control_post("callbacks", json!({"to": to, "sequence": ["queued"]}))
        .await;
    assert!(status.is_success(), "{status}");
    // Identical bodies to one number: two messages, both still queued.
    for _ in 0..2 {
        let (status, created) = sandbox
            .create(&[("To", to), ("From", FROM), ("Body", "same")])
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(created["date_sent"], Value::Null);
    }
    let to_q = format!("To={}", encode(to));
    let (_, page) = sandbox.api_get(&format!("Messages.json?{to_q}")).await;
    let listed = page["messages"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "two separate messages");
    assert_ne!(listed[0]["sid"], listed[1]["sid"]);
    assert!(listed
        .iter()
        .all(|m| m["status"] == "queued" && m["date_sent"].is_null()));
    for filter in [
        format!("DateSent={}", utc_date(0)),
        format!("DateSent%3E={}", utc_date(-1)),
        format!("DateSent%3C={}", utc_date(1)),
    ] {
        let (_, page) = sandbox
            .api_get(&format!("Messages.json?{to_q}&{filter}"))
            .await;
        assert_eq!(page["messages"].as_array().unwrap().len(), 0, "{filter}");
    }
}

#[tokio::test]
async fn the_list_pages_through_next_page_uri() {
    let sandbox = Sandbox::start().await;
    let to = "+14155550142";
    for i in 0..5 {
        let (status, _) = sandbox
            .create(&[("To", to), ("From", FROM), ("Body", &format!("n{i}"))])
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut next = Some(format!("Messages.json?To={}&PageSize=2", encode(to)));
    let mut bodies = Vec::new();
    let mut pages = 0;
    while let Some(path) = next {
        let (status, page) = sandbox.api_get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["page_size"], 2);
        pages += 1;
        bodies.extend(
            page["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["body"].as_str().unwrap().to_owned()),
        );
        next = page["next_page_uri"].as_str().map(|uri| {
            uri.strip_prefix(&format!("/2010-04-01/Accounts/{ACCOUNT}/"))
                .unwrap()
                .to_owned()
        });
    }
    assert_eq!(pages, 3);
    assert_eq!(bodies, ["n4", "n3", "n2", "n1", "n0"]);
}
