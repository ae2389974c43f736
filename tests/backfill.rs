//! No inbound text lost: the sandbox plays Twilio's side (it receives a text, delivers the
//! signed webhook with the retries of its connection overrides, and lists the text in its
//! Messages API), and the inbound backfill records what the webhook could not, exactly once.
//!
//! Each test texts a Parley number of its own, so its backfill lists only its own texts and
//! keeps its own checkpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use parley::handlers::inbound_backfill::{
    BackfillConfig, BackfillReport, BackfillRequest, InboundBackfill,
};
use parley::handlers::inbound_sms::{InboundSmsHandler, ROUTE};
use parley::phone::Address;
use parley::store::{Message, Store};
use parley::time::{ManualClock, Timestamp};
use parley::twilio::client::{Sender, TwilioClient};
use parley::twilio::overrides::{with_overrides, WEBHOOK_OVERRIDES};
use parley::twilio::MessageSid;
use parley_e2e::*;
use serde_json::{json, Value};

/// The stack's store, through a DynamoDB client that refuses the first `count` calls of
/// `operation` (every call when `count` is `usize::MAX`).
async fn failing_store(stack: &Stack, operation: &'static str, count: usize) -> Store {
    stack
        .store_with(FailFirst {
            operation,
            remaining: AtomicUsize::new(count),
        })
        .await
}

#[derive(Debug)]
struct FailFirst {
    operation: &'static str,
    remaining: AtomicUsize,
}

impl Intercept for FailFirst {
    fn name(&self) -> &'static str {
        "FailFirst"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned());
        if operation.as_deref() == Some(self.operation)
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(format!("injected fault in {}", self.operation).into());
        }
        Ok(())
    }
}

/// Parley's inbound webhook served from this process over `store` (as the gateway serves
/// it): its URL, and the server, stopped when dropped.
struct Webhook {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn webhook(stack: &Stack, store: Store) -> Webhook {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (_, secrets) = stack.own_secrets(&stack.token, None).await;
    let config = parley::config::WebhookConfig {
        public_base_url: base.clone(),
        ..stack.webhook_config()
    };
    let handler = Arc::new(InboundSmsHandler::new(store, secrets, config));
    let function: parley_local::gateway::HttpFunction = Arc::new(move |req| {
        let handler = handler.clone();
        Box::pin(async move { handler.handle(req).await })
    });
    let routes = parley_local::template::Template::load_default()
        .unwrap()
        .http_routes()
        .into_iter()
        .filter(|r| r.function == "InboundSmsFunction")
        .collect();
    let gateway = parley_local::gateway::Gateway::new(
        routes,
        [("InboundSmsFunction".to_owned(), function)].into(),
    )
    .unwrap();
    let task = tokio::spawn(async move {
        let _ = parley_local::gateway::serve(listener, gateway).await;
    });
    Webhook {
        url: format!("{base}{ROUTE}"),
        task,
    }
}

/// The sandbox receives a text on `to` and delivers its webhook to `sms_url`.
async fn text(stack: &Stack, from: &str, to: &str, body: &str, sms_url: &str) -> Value {
    receive(
        stack,
        json!({"from": from, "to": to, "body": body, "sms_url": sms_url}),
    )
    .await
}

async fn receive(stack: &Stack, request: Value) -> Value {
    let resp = stack
        .http
        .post(format!("{}/_sandbox/receive", stack.sandbox()))
        .json(&request)
        .send()
        .await
        .expect("sandbox reachable");
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().await.unwrap()
}

fn sid_of(received: &Value) -> MessageSid {
    MessageSid::parse(received["message"]["sid"].as_str().unwrap()).unwrap()
}

/// A backfill of `number` only, run in this process against the stack's store and sandbox.
async fn backfill(stack: &Stack, number: &str, page_size: u32) -> InboundBackfill {
    let (_, secrets) = stack.own_secrets(&stack.token, None).await;
    let twilio = TwilioClient::new(
        &stack.sandbox(),
        Sender::Number(String::new()),
        Duration::from_secs(10),
    )
    .unwrap();
    InboundBackfill::new(
        stack.store.clone(),
        twilio,
        secrets,
        BackfillConfig {
            numbers: vec![number.to_owned()],
            page_size,
            ..BackfillConfig::default()
        },
    )
}

async fn run(backfill: &InboundBackfill) -> BackfillReport {
    backfill
        .run(&BackfillRequest::default())
        .await
        .expect("backfill run")
}

/// Every message of the sender's conversation.
async fn thread(stack: &Stack, from: &str) -> Vec<Message> {
    let address = Address::parse(from).unwrap();
    stack
        .store
        .messages(address.channel, &address.e164, 100)
        .await
        .unwrap()
}

/// A URL where nothing listens, with overrides that give up at once: the webhook is lost.
const LOST: &str = "http://127.0.0.1:9/webhook/twilio/sms#rc=0";

#[tokio::test]
async fn a_text_the_webhook_could_not_store_past_its_retries_is_recorded_once_by_the_backfill() {
    let stack = stack().await;
    let parley = unique_phone();
    let sender = unique_phone();
    let tenant = format!("t-backfill-{}", ulid::Ulid::new());
    stack.add_tenant(&tenant, &[&sender]).await;
    let events = stack.subscribe_events().await;
    let body = unique_body("The sink is leaking again");

    // The store is down for the whole delivery: every attempt Twilio makes is a 503.
    let down = webhook(
        &stack,
        failing_store(&stack, "TransactWriteItems", usize::MAX).await,
    )
    .await;
    let received = text(&stack, &sender, &parley, &body, &with_overrides(&down.url)).await;
    assert_eq!(received["webhook"]["delivered"], false, "{received}");
    let attempts = received["webhook"]["attempts"].as_array().unwrap();
    assert_eq!(
        attempts.len(),
        4,
        "the first attempt and rc=3 retries: {received}"
    );
    assert!(attempts.iter().all(|a| a["response_status"] == 503));
    let sid = sid_of(&received);
    assert!(stack.store.sid_guard(&sid).await.unwrap().is_none());

    // The store is back: the backfill finds the text at Twilio and records it.
    let backfill = backfill(&stack, &parley, 1000).await;
    let report = run(&backfill).await;
    assert_eq!((report.listed, report.recorded), (1, 1), "{report:?}");
    let stored = thread(&stack, &sender).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].twilio_sid.as_deref(), Some(sid.as_str()));
    assert_eq!(stack.store.body_of(&stored[0]).await.unwrap(), body);
    assert_eq!(stored[0].to_e164.as_str(), parley);

    // Again: nothing is written twice.
    let again = run(&backfill).await;
    assert_eq!((again.recorded, again.already_stored), (0, 1), "{again:?}");
    assert_eq!(thread(&stack, &sender).await.len(), 1);

    // The processor saw it once: one sms.received for the tenant's text.
    let message_id = stored[0].message_id.clone();
    let mut seen: Vec<Value> = eventually(60, "sms.received", || async {
        let mine: Vec<Value> = stack
            .drain_events(&events)
            .await
            .into_iter()
            .filter(|e| e["detail-type"] == "sms.received")
            .collect();
        (!mine.is_empty()).then_some(mine)
    })
    .await;
    seen.extend(stack.drain_events(&events).await);
    let for_it: Vec<&Value> = seen
        .iter()
        .filter(|e| e["detail-type"] == "sms.received" && e["detail"]["message_id"] == message_id)
        .collect();
    assert_eq!(for_it.len(), 1, "{seen:?}");
    assert_eq!(for_it[0]["detail"]["tenant_id"], tenant.as_str());
}

#[tokio::test]
async fn a_5xx_then_success_is_one_stored_message() {
    let stack = stack().await;
    let parley = unique_phone();
    let sender = unique_phone();
    // The store refuses the first write only: Twilio's retry (rp includes 5xx) stores it.
    let flaky = webhook(&stack, failing_store(&stack, "TransactWriteItems", 1).await).await;
    let body = unique_body("Can someone call me back?");
    let received = text(&stack, &sender, &parley, &body, &with_overrides(&flaky.url)).await;
    assert_eq!(received["webhook"]["delivered"], true, "{received}");
    assert_eq!(
        received["webhook"]["attempts"],
        json!([{"response_status": 503}, {"response_status": 200}])
    );
    let stored = thread(&stack, &sender).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].twilio_sid.as_deref(),
        Some(sid_of(&received).as_str())
    );

    // The same URL without the overrides: Twilio would not have retried the 503.
    let flaky = webhook(&stack, failing_store(&stack, "TransactWriteItems", 1).await).await;
    let lost = text(&stack, &sender, &parley, &unique_body("Hello?"), &flaky.url).await;
    assert_eq!(
        lost["webhook"]["attempts"],
        json!([{"response_status": 503}])
    );
    assert!(stack
        .store
        .sid_guard(&sid_of(&lost))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_signature_holds_with_the_override_fragment_and_a_run_with_nothing_missing_records_nothing(
) {
    let stack = stack().await;
    let parley = unique_phone();
    let sender = unique_phone();
    // Delivered by the sandbox to the running stack, through the URL as pasted in the console.
    let configured = with_overrides(&stack.inbound_url());
    assert!(configured.ends_with(&format!("#{WEBHOOK_OVERRIDES}")));
    let received = text(
        &stack,
        &sender,
        &parley,
        &unique_body("Rent paid"),
        &configured,
    )
    .await;
    assert_eq!(
        received["webhook"]["attempts"],
        json!([{"response_status": 200}]),
        "{received}"
    );

    // Twilio may sign the URL with its fragment: that is accepted too.
    let form = InboundForm::new(&stack, &sender, &unique_body("Signed with the fragment"));
    let reply = stack
        .post_inbound_raw(
            form.encode(),
            Some(&form.signature(&stack.token, &configured)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let forged = stack
        .post_inbound_raw(
            form.encode(),
            Some(&form.signature(&stack.token, &format!("{}#rc=5", stack.inbound_url()))),
        )
        .await;
    assert_eq!(forged.status, 403, "another fragment is not Parley's");

    let report = run(&backfill(&stack, &parley, 1000).await).await;
    assert_eq!(
        (report.listed, report.recorded, report.already_stored),
        (1, 0, 1),
        "{report:?}"
    );
    assert_eq!(thread(&stack, &sender).await.len(), 2);
}

#[tokio::test]
async fn the_backfill_pages_through_every_page_and_its_checkpoint_advances() {
    let stack = stack().await;
    let parley = unique_phone();
    let sender = unique_phone();
    let mut sids = Vec::new();
    for i in 0..5 {
        let received = text(
            &stack,
            &sender,
            &parley,
            &unique_body(&format!("Text {i}")),
            LOST,
        )
        .await;
        sids.push(sid_of(&received));
    }
    // Another number's text is not this number's to backfill.
    let elsewhere = text(
        &stack,
        &sender,
        &unique_phone(),
        &unique_body("Other"),
        LOST,
    )
    .await;

    let start = Timestamp::now();
    let backfill = backfill(&stack, &parley, 2).await;
    let report = run(&backfill).await;
    assert_eq!(
        (report.pages, report.listed, report.recorded),
        (3, 5, 5),
        "{report:?}"
    );
    for sid in &sids {
        assert!(stack.store.sid_guard(sid).await.unwrap().is_some());
    }
    assert!(stack
        .store
        .sid_guard(&sid_of(&elsewhere))
        .await
        .unwrap()
        .is_none());
    let stored = thread(&stack, &sender).await;
    let mut stored_sids: Vec<String> = stored.iter().filter_map(|m| m.twilio_sid.clone()).collect();
    let mut listed_sids: Vec<String> = sids.iter().map(|s| s.as_str().to_owned()).collect();
    stored_sids.sort();
    listed_sids.sort();
    assert_eq!(stored_sids, listed_sids);

    // Written after each page: two resume points, then the run's start as `through`.
    let checkpoint = stack
        .store
        .backfill_checkpoint(&parley)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(checkpoint.version, 2, "{checkpoint:?}");
    assert!(checkpoint.resume.is_none());
    assert!(checkpoint.through >= start, "{checkpoint:?}");

    // The next run re-reads the overlap (an hour before the checkpoint): all stored already.
    let again = run(&backfill).await;
    assert_eq!(
        (again.listed, again.recorded, again.already_stored),
        (5, 0, 5)
    );
    let moved = stack
        .store
        .backfill_checkpoint(&parley)
        .await
        .unwrap()
        .unwrap();
    assert!(
        moved.through >= checkpoint.through && moved.version > checkpoint.version,
        "{moved:?}"
    );

    // Two hours on: the run reads back to an hour before the checkpoint (all five again) and
    // moves the checkpoint to its start; the next one's window begins after these texts.
    let two_hours_on = Timestamp::now().plus(Duration::from_secs(7200));
    let later = Arc::new(ManualClock::new(two_hours_on));
    let backfill = backfill.with_clock(later.clone());
    assert_eq!(run(&backfill).await.already_stored, 5);
    later.set(two_hours_on.plus(Duration::from_secs(900)));
    let advanced = run(&backfill).await;
    assert_eq!((advanced.listed, advanced.recorded), (0, 0), "{advanced:?}");
    let far = stack
        .store
        .backfill_checkpoint(&parley)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(far.through, two_hours_on.plus(Duration::from_secs(900)));

    // By hand, since three hours ago: everything is read again, the checkpoint kept.
    let by_hand = backfill
        .run(&BackfillRequest {
            since: Some(Timestamp::now().minus(Duration::from_secs(3 * 3600))),
            numbers: None,
        })
        .await
        .unwrap();
    assert_eq!((by_hand.listed, by_hand.already_stored), (5, 5));
    assert_eq!(
        stack
            .store
            .backfill_checkpoint(&parley)
            .await
            .unwrap()
            .unwrap()
            .through,
        far.through
    );
}

#[tokio::test]
async fn a_run_the_store_fails_keeps_its_checkpoint_and_the_next_run_records_everything() {
    let stack = stack().await;
    let parley = unique_phone();
    let sender = unique_phone();
    for i in 0..3 {
        text(
            &stack,
            &sender,
            &parley,
            &unique_body(&format!("Outage {i}")),
            LOST,
        )
        .await;
    }
    // The first page's write goes through, the second page's fails.
    let failing = InboundBackfill::new(
        failing_store_after(&stack, "TransactWriteItems", 1).await,
        TwilioClient::new(
            &stack.sandbox(),
            Sender::Number(String::new()),
            Duration::from_secs(10),
        )
        .unwrap(),
        stack.own_secrets(&stack.token, None).await.1,
        BackfillConfig {
            numbers: vec![parley.clone()],
            page_size: 1,
            ..BackfillConfig::default()
        },
    );
    let error = failing
        .handle(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "StoreUnavailable");
    assert_eq!(
        thread(&stack, &sender).await.len(),
        1,
        "the first page's text"
    );
    // Only the fully recorded first page moved it: a resume point at the second page.
    let checkpoint = stack
        .store
        .backfill_checkpoint(&parley)
        .await
        .unwrap()
        .unwrap();
    let resume = checkpoint.resume.expect("a resume point");
    assert!(resume.next_page_uri.contains("Page=1"), "{resume:?}");

    let report = run(&backfill(&stack, &parley, 1).await).await;
    assert_eq!(report.recorded, 2, "{report:?}");
    assert_eq!(thread(&stack, &sender).await.len(), 3);
    let done = stack
        .store
        .backfill_checkpoint(&parley)
        .await
        .unwrap()
        .unwrap();
    assert!(done.resume.is_none());
}

/// The stack's store, refusing every call of `operation` after the first `pass` ones.
async fn failing_store_after(stack: &Stack, operation: &'static str, pass: usize) -> Store {
    stack
        .store_with(FailAfter {
            operation,
            pass,
            seen: AtomicUsize::new(0),
        })
        .await
}

#[derive(Debug)]
struct FailAfter {
    operation: &'static str,
    pass: usize,
    seen: AtomicUsize,
}

impl Intercept for FailAfter {
    fn name(&self) -> &'static str {
        "FailAfter"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map(|m| m.name().to_owned());
        if operation.as_deref() == Some(self.operation)
            && self.seen.fetch_add(1, Ordering::SeqCst) >= self.pass
        {
            return Err(format!("injected fault in {}", self.operation).into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn an_mms_is_backfilled_with_its_media_as_the_webhook_would_have_named_them() {
    let stack = stack().await;
    let parley = unique_phone();
    let sender = unique_phone();
    let received = receive(
        &stack,
        json!({"from": sender, "to": parley, "body": unique_body("Photo of the leak"),
               "media": ["image/jpeg", "image/png"], "sms_url": LOST}),
    )
    .await;
    let sid = received["message"]["sid"].as_str().unwrap().to_owned();
    assert!(sid.starts_with("MM"));
    let report = run(&backfill(&stack, &parley, 1000).await).await;
    assert_eq!(report.recorded, 1, "{report:?}");
    let stored = thread(&stack, &sender).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].num_media, 2);
    assert_eq!(stored[0].media_content_types, ["image/jpeg", "image/png"]);
    let urls = stack.store.media_of(&stored[0]).await.unwrap();
    let prefix = format!(
        "{}/2010-04-01/Accounts/{}/Messages/{sid}/Media/ME",
        stack.sandbox(),
        stack.account_sid
    );
    assert!(
        urls.len() == 2
            && urls
                .iter()
                .all(|u| u.starts_with(&prefix) && !u.ends_with(".json")),
        "{urls:?}"
    );
}

/// The runbook's command, against the local stack: `parley-local backfill --since …`.
#[tokio::test]
async fn the_runbook_command_backfills_a_window_by_hand() {
    let stack = stack().await;
    let parley = unique_phone();
    let sender = unique_phone();
    let received = text(&stack, &sender, &parley, &unique_body("Locked out"), LOST).await;
    let since = Timestamp::now()
        .minus(Duration::from_secs(3600))
        .to_string();
    let command = |args: &[&str]| {
        std::process::Command::new(parley_local_bin())
            .arg("backfill")
            .args(args)
            // The stack's configuration, with this test's number as Parley's.
            .env("TWILIO_FROM_NUMBER", &parley)
            .output()
            .expect("target/debug/parley-local")
    };
    let out = command(&["--since", &since, "--number", &parley]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = last_line(&out.stdout);
    assert_eq!(report["recorded"], 1, "{report}");
    assert!(stack
        .store
        .sid_guard(&sid_of(&received))
        .await
        .unwrap()
        .is_some());
    assert_eq!(thread(&stack, &sender).await.len(), 1);

    let out = command(&["--since", &since]);
    let report = last_line(&out.stdout);
    assert_eq!(
        (
            report["recorded"].as_u64(),
            report["already_stored"].as_u64()
        ),
        (Some(0), Some(1))
    );

    // A bad window is refused with its reason, and nothing runs.
    let out = command(&["--since", "yesterday"]);
    assert!(!out.status.success());
    let answer = last_line(&out.stdout);
    assert_eq!(answer["errorType"], "InvalidRequest", "{answer}");
    let out = command(&["--number", "+14155550000"]);
    assert!(!out.status.success(), "not one of Parley's numbers");
}

/// The command's answer: the last line of its output (the metric lines the functions print,
/// as on Lambda, come before it).
fn last_line(stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.trim().lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {text}"))
}
