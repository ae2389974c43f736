//! `GET /conversations` (the inbox) and `GET /stats` over the gateway, with the flags and
//! counters the stream processor keeps; the counters' arithmetic on a table of the test's own.

use parley::store::{Count, Store};
use parley::time::Timestamp;
use parley::twilio::form::percent_encode as encode;
use parley_e2e::*;
use serde_json::{json, Value};

async fn get(stack: &Stack, path: &str) -> (u16, Value) {
    let reply = stack.get(path, Some(&stack.api_key)).await;
    (reply.status, reply.json())
}

/// The inbox entry of `phone` found by searching for it as written with spaces and dashes.
async fn entry(stack: &Stack, phone: &str, filters: &str) -> Option<Value> {
    let (status, json) = get(
        stack,
        &format!("/conversations?q={}{filters}", encode(&spaced(phone))),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert!(json["next_cursor"].is_null());
    json["conversations"].as_array().unwrap().first().cloned()
}

/// Walks the inbox with `filters` until `phone` shows up, checking every entry against `each`.
async fn walk_until(
    stack: &Stack,
    phone: &str,
    filters: &str,
    each: impl Fn(&Value) -> bool,
) -> bool {
    let mut path = format!("/conversations?limit=50{filters}");
    let mut previous: Option<String> = None;
    for _ in 0..200 {
        let (status, json) = get(stack, &path).await;
        assert_eq!(status, 200, "{json}");
        for c in json["conversations"].as_array().unwrap() {
            assert!(each(c), "an entry outside the filter {filters}: {c}");
            let at = c["last_message_at"].as_str().unwrap().to_owned();
            if let Some(p) = &previous {
                assert!(&at <= p, "newest first: {at} after {p}");
            }
            previous = Some(at);
            if c["phone_number"] == phone {
                return true;
            }
        }
        match json["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/conversations?limit=50{filters}&cursor={}", encode(cursor))
            }
            None => return false,
        }
    }
    panic!("the inbox did not end in 200 pages");
}

#[tokio::test]
async fn the_inbox_lists_a_thread_with_its_flags_as_they_change() {
    let stack = stack().await;
    let phone = unique_phone();
    record_sensitive("phone", &phone);
    let body = unique_body("hello from the inbox test");
    let reply = stack
        .post_inbound(&InboundForm::new(&stack, &phone, &body))
        .await;
    assert_eq!(reply.status, 200);

    let first = eventually(20, "the conversation in the inbox", || async {
        entry(&stack, &phone, "").await
    })
    .await;
    assert_eq!(first["phone_number"], phone);
    assert_eq!(first["channel"], "sms");
    assert_eq!(first["unread_count"], 1);
    assert_eq!(first["pending_count"], 0);
    assert_eq!(first["opted_out"], false);
    assert!(first["tenant_id"].is_null(), "an unknown sender");
    assert!(
        walk_until(&stack, &phone, "&tenant=unknown", |c| c["tenant_id"]
            .is_null())
        .await
    );

    // A message for next week is pending until it is canceled by the STOP below.
    let accepted = stack
        .send(&json!({"to": phone, "body": "see you next week", "send_at": Timestamp::now().plus(std::time::Duration::from_secs(7 * 24 * 3600)).to_string()}), None)
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    eventually(20, "the pending flag", || async {
        entry(&stack, &phone, "&pending=true")
            .await
            .filter(|c| c["pending_count"] == 1)
    })
    .await;
    assert!(entry(&stack, &phone, "&pending=false").await.is_none());
    assert!(
        walk_until(&stack, &phone, "&pending=true", |c| c["pending_count"]
            .as_u64()
            > Some(0))
        .await
    );

    let reply = stack
        .post_inbound(&InboundForm::new(&stack, &phone, "STOP"))
        .await;
    assert_eq!(reply.status, 200);
    let stopped = eventually(20, "the opt-out mirrored and the send canceled", || async {
        entry(&stack, &phone, "&opted_out=true")
            .await
            .filter(|c| c["pending_count"] == 0)
    })
    .await;
    assert_eq!(stopped["unread_count"], 2);
    assert_eq!(stopped["message_count"], 3);
    assert!(entry(&stack, &phone, "&opted_out=false").await.is_none());
    assert!(
        walk_until(&stack, &phone, "&opted_out=true&pending=false", |c| c
            ["opted_out"]
            == true
            && c["pending_count"] == 0)
        .await
    );
}

#[tokio::test]
async fn stats_count_what_came_in_and_went_out() {
    let stack = stack().await;
    let from = Timestamp::now().minus(std::time::Duration::from_secs(3600));
    let totals = |json: &Value, field: &str| json["totals"][field].as_u64().unwrap();
    let path = format!("/stats?from={}&granularity=hour", encode(&from.to_string()));
    let (status, before) = get(&stack, &path).await;
    assert_eq!(status, 200, "{before}");

    let phone = unique_phone();
    record_sensitive("phone", &phone);
    for i in 0..3 {
        let body = unique_body(&format!("hello number {i}, this is an English sentence"));
        assert_eq!(
            stack
                .post_inbound(&InboundForm::new(&stack, &phone, &body))
                .await
                .status,
            200
        );
    }
    let after = eventually(20, "three more inbound counted", || async {
        let (status, json) = get(&stack, &path).await;
        assert_eq!(status, 200);
        (totals(&json, "inbound") >= totals(&before, "inbound") + 3).then_some(json)
    })
    .await;
    assert_eq!(after["granularity"], "hour");
    let buckets = after["buckets"].as_array().unwrap();
    assert!(
        !buckets.is_empty() && buckets.len() <= 3,
        "{} hourly buckets in two hours",
        buckets.len()
    );
    let summed: u64 = buckets.iter().map(|b| b["inbound"].as_u64().unwrap()).sum();
    assert_eq!(
        summed,
        totals(&after, "inbound"),
        "the totals are the buckets' sum"
    );

    let (status, days) = get(
        &stack,
        &format!(
            "{}&granularity=day",
            path.trim_end_matches("&granularity=hour")
        ),
    )
    .await;
    assert_eq!(status, 200, "{days}");
    assert!(days["buckets"].as_array().unwrap().len() <= 2);
}

#[tokio::test]
async fn bad_listing_requests_are_400s_and_need_a_key() {
    let stack = stack().await;
    for path in [
        "/conversations?tenant=maybe",
        "/conversations?pending=2",
        "/conversations?limit=0",
        "/conversations?cursor=forged.cursor",
        "/conversations?q=not-a-number",
        "/stats?granularity=week",
        "/stats?from=2026-11-30T10:00:00Z&to=2026-11-30T09:00:00Z",
        "/stats?from=2026-01-01T00:00:00Z&to=2026-11-30T00:00:00Z",
        "/stats?from=yesterday",
    ] {
        let (status, json) = get(&stack, path).await;
        assert_eq!(status, 400, "{path}: {json}");
        assert!(json["error"]["code"].is_string(), "{path}: {json}");
    }
    for path in ["/conversations", "/stats"] {
        assert_eq!(stack.get(path, None).await.status, 401, "{path}");
    }
}

#[tokio::test]
async fn hourly_counters_add_up_by_hour_and_by_day() {
    let stack = stack().await;
    let store: Store = stack.own_table("stats").await;
    let at = |s: &str| Timestamp::parse(s).unwrap();
    let failed = |code: &str| Count::Failed {
        error_code: Some(code.into()),
    };
    store
        .add_counts(
            at("2026-11-30T09:05:00Z"),
            &[Count::Outbound, Count::Delivered],
        )
        .await
        .unwrap();
    store
        .add_counts(
            at("2026-11-30T09:55:00Z"),
            &[failed("30003"), Count::OptOut],
        )
        .await
        .unwrap();
    store
        .add_counts(
            at("2026-11-30T23:59:59Z"),
            &[failed("30003"), failed("30007")],
        )
        .await
        .unwrap();
    store
        .add_counts(at("2026-12-01T00:00:00Z"), &[Count::Sent])
        .await
        .unwrap();
    store
        .add_counts(at("2026-11-30T08:59:59Z"), &[])
        .await
        .unwrap();

    let hours = store
        .hourly_stats(at("2026-11-30T09:00:00Z"), at("2026-12-01T00:30:00Z"))
        .await
        .unwrap();
    let names: Vec<&str> = hours.iter().map(|h| h.hour.as_str()).collect();
    assert_eq!(
        names,
        [
            "2026-11-30T09:00:00.000Z",
            "2026-11-30T23:00:00.000Z",
            "2026-12-01T00:00:00.000Z"
        ]
    );
    assert_eq!(
        (
            hours[0].outbound,
            hours[0].delivered,
            hours[0].failed,
            hours[0].opt_outs
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(hours[1].failures_by_code.get("30003"), Some(&1));
    assert_eq!(hours[1].failures_by_code.get("30007"), Some(&1));
    assert_eq!(hours[2].sent, 1);

    // `to` is exclusive and `from` starts at its hour.
    let narrow = store
        .hourly_stats(at("2026-11-30T09:30:00Z"), at("2026-11-30T23:00:00Z"))
        .await
        .unwrap();
    assert_eq!(narrow.len(), 1);
    let (days, totals) =
        parley::handlers::stats::bucket(&hours, parley::handlers::stats::Granularity::Day);
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].failed, 3);
    assert_eq!(days[0].delivery_rate, Some(0.25));
    assert_eq!(totals.failures_by_code["30003"], 2);
}
