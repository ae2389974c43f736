//! Event rules against the emulator: the engine in this process (each test with its own table
//! and an unread queue, so every message it makes stays where the rule put it), and the
//! running stack end to end — rules through the API, events through EventBridge and through
//! `POST /events`, the router on its queue, the worker and the sandbox.

use std::sync::Arc;
use std::time::Duration;

use parley::handlers::event_router::EventRouter;
use parley::language::{Language, Preference};
use parley::monitor::MonitorClient;
use parley::pending::Policy;
use parley::phone::Address;
use parley::pipeline::PipelineState;
use parley::queue::JobQueue;
use parley::rules::activity::{Activity, Outcome};
use parley::rules::cache::RuleCache;
use parley::rules::engine::Engine;
use parley::rules::event::Event;
use parley::rules::rule::{self, Rule};
use parley::send::SendService;
use parley::store::tenants::PhoneTenant;
use parley::store::{keys, Store};
use parley::time::Timestamp;
use parley_e2e::*;
use serde_json::{json, Value};

fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

/// The engine on a table and queue of its own.
struct Local {
    stack: Stack,
    store: Store,
    engine: Engine,
    /// A source no other test's events use.
    source: String,
}

async fn local(label: &str) -> Local {
    let stack = stack().await;
    let store = stack.own_table(label).await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("test-rules-{label}-{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let policy = Arc::new(Policy::from_env().unwrap());
    let service = SendService::new(store.clone(), JobQueue::new(sqs, queue_url), policy);
    let monitor = MonitorClient::new(
        &stack.monitor(),
        stack.env.get("LOCAL_MONITOR_API_KEY").unwrap_or_default(),
        Duration::from_secs(3),
    )
    .unwrap();
    Local {
        engine: Engine::new(service, Some(Arc::new(monitor))),
        store,
        stack,
        source: format!("test.{}", ulid::Ulid::new().to_string().to_lowercase()),
    }
}

impl Local {
    fn rule(&self, spec: Value) -> Rule {
        let spec =
            rule::validate(spec.to_string().as_bytes()).unwrap_or_else(|e| panic!("{spec}: {e:?}"));
        let now = Timestamp::now();
        Rule {
            rule_id: ulid::Ulid::new().to_string(),
            version: 1,
            created_at: now,
            updated_at: now,
            spec,
        }
    }

    fn event(&self, detail_type: &str, detail: Value) -> Event {
        self.event_at(detail_type, detail, "2026-12-01T15:00:00Z")
    }

    fn event_at(&self, detail_type: &str, detail: Value, time: &str) -> Event {
        Event::from_json(json!({
            "version": "0", "id": ulid::Ulid::new().to_string(), "source": self.source,
            "detail-type": detail_type, "time": time, "region": "us-east-1",
            "account": "000000000000", "resources": [], "detail": detail,
        }))
        .unwrap()
    }

    async fn fire(&self, rule: &Rule, event: &Event) -> Option<Activity> {
        self.fire_at(rule, event, Timestamp::now()).await
    }

    /// Fires at a given instant: a test whose expectations are dates must not depend on when
    /// it runs.
    async fn fire_at(&self, rule: &Rule, event: &Event, now: Timestamp) -> Option<Activity> {
        self.engine.fire(rule, event, now).await.unwrap()
    }

    async fn messages_to(&self, phone: &str) -> Vec<parley::store::Message> {
        let a = Address::parse(phone).unwrap();
        self.store
            .messages_page(a.channel, &a.e164, 100, None)
            .await
            .unwrap()
            .0
    }

    async fn message(&self, activity: &Activity) -> parley::store::Message {
        let id = activity.message_id.as_deref().expect("a message id");
        self.store.message_by_id(id).await.unwrap().unwrap()
    }

    async fn body(&self, activity: &Activity) -> String {
        let m = self.message(activity).await;
        self.store.body_of(&m).await.unwrap()
    }
}

/// A rule to the number at `$.detail.phone`, overdue-reminder style.
fn reminder(source: &str, extra: Value) -> Value {
    let mut spec = json!({
        "name": "overdue reminder",
        "match": {"source": [source], "detail-type": ["invoice.overdue"]},
        "recipient": {"phone": "$.detail.phone"},
        "template": {
            "en": "Invoice {{ detail.invoice_id }} is overdue.",
            "es": "La factura {{ detail.invoice_id }} está vencida.",
            "pt": "A fatura {{ detail.invoice_id }} está vencida.",
            "default": "Invoice {{ detail.invoice_id }} is overdue (default)."
        },
        "dedupe": "invoice-{{ detail.invoice_id }}",
        "cancel_on": [{"source": [source], "detail-type": ["payment.received"]}],
        "workflow_type": "collections",
        "workflow_id": "{{ detail.invoice_id }}",
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

#[tokio::test]
async fn a_rule_schedules_its_message_with_its_cause_and_workflow() {
    let l = local("fire").await;
    let rule = l.rule(reminder(&l.source, json!({"timing": {"delay": "P2D"}})));
    let phone = unique_phone();
    let event = l.event(
        "invoice.overdue",
        json!({"phone": phone, "invoice_id": "INV-1"}),
    );
    // At the event's time: two days after it is then ahead whatever day the test runs.
    let a = l
        .fire_at(&rule, &event, at("2026-12-01T15:00:00Z"))
        .await
        .unwrap();
    assert_eq!(a.outcome, Outcome::Scheduled);
    assert_eq!(a.state, Some(PipelineState::Scheduled));
    // Two days after the event's time, not after now.
    assert_eq!(a.send_at, Some(at("2026-12-03T15:00:00Z")));
    let m = l.message(&a).await;
    let cause = m.cause.clone().unwrap();
    assert_eq!(cause.rule_id, rule.rule_id);
    assert_eq!(cause.rule_version, 1);
    assert_eq!(cause.event_id, event.id);
    assert_eq!(cause.detail_type, "invoice.overdue");
    assert_eq!(cause.dedupe_key, "invoice-INV-1");
    assert_eq!(m.workflow_type.as_deref(), Some("collections"));
    assert_eq!(m.workflow_id.as_deref(), Some("INV-1"));
    assert_eq!(l.body(&a).await, "Invoice INV-1 is overdue (default).");
    let (entries, _) = l
        .store
        .activity_page(&rule.rule_id, 10, None)
        .await
        .unwrap();
    assert_eq!(entries, vec![a]);
}

#[tokio::test]
async fn each_timing_form_resolves_through_the_pending_engine() {
    let l = local("timing").await;
    let phone = unique_phone(); // +1 628: America/Los_Angeles
    let cases = [
        (json!("now"), None),
        (json!({"delay": "PT2H"}), Some("2026-12-01T17:00:00Z")),
        (
            json!({"at": "$.detail.due", "offset": "-PT1H"}),
            Some("2026-12-20T14:00:00Z"),
        ),
        // A date, the day after, at 10:00 in the recipient's zone (PST, UTC-8).
        (
            json!({"at": "$.detail.due_date", "offset": "P1D", "local_time": "10:00"}),
            Some("2026-12-21T18:00:00Z"),
        ),
    ];
    for (i, (timing, expected)) in cases.into_iter().enumerate() {
        let rule = l.rule(reminder(&l.source, json!({ "timing": timing })));
        let event = l.event(
            "invoice.overdue",
            json!({"phone": phone, "invoice_id": format!("T-{i}"),
                   "due": "2026-12-20T15:00:00Z", "due_date": "2026-12-20"}),
        );
        // The engine's clock at the event's time (`l.event`'s), so that "two hours later" and
        // the due dates stay ahead of it whatever day the test runs.
        let now = at("2026-12-01T15:00:00Z");
        let a = l.fire_at(&rule, &event, now).await.unwrap();
        assert_eq!(a.outcome, Outcome::Scheduled, "{timing}");
        match expected {
            Some(t) => assert_eq!(a.send_at, Some(at(t)), "{timing}"),
            None => {
                assert_eq!(a.state, Some(PipelineState::Queued));
                assert_eq!(a.send_at, Some(now));
            }
        }
    }
    // A timing the event cannot satisfy is recorded, not retried.
    let rule = l.rule(reminder(
        &l.source,
        json!({"timing": {"at": "$.detail.nowhere"}}),
    ));
    let event = l.event(
        "invoice.overdue",
        json!({"phone": phone, "invoice_id": "T-x"}),
    );
    let a = l.fire(&rule, &event).await.unwrap();
    assert_eq!(a.outcome, Outcome::TimingFailed);
    assert!(a.message_id.is_none());
}

#[tokio::test]
async fn the_language_is_the_tenants_else_the_conversations_else_the_default() {
    let l = local("language").await;
    let rule = l.rule(reminder(&l.source, json!({})));
    // Unknown number: the default text.
    let stranger = unique_phone();
    let e = l.event(
        "invoice.overdue",
        json!({"phone": stranger, "invoice_id": "L-1"}),
    );
    let a = l.fire(&rule, &e).await.unwrap();
    assert_eq!(l.body(&a).await, "Invoice L-1 is overdue (default).");

    // A number linked to a tenant whose preference is Portuguese.
    let tenant_phone = unique_phone();
    let address = Address::parse(&tenant_phone).unwrap();
    let tenant = format!("t-{}", ulid::Ulid::new());
    // (The mapping is kept only while the number has a conversation: a first message.)
    let e = l.event(
        "invoice.overdue",
        json!({"phone": tenant_phone, "invoice_id": "L-2a"}),
    );
    l.fire(&rule, &e).await.unwrap();
    let linked = l
        .store
        .put_phone_tenant(
            address.channel,
            &address.e164,
            &PhoneTenant {
                tenant_id: tenant.clone(),
                matched_variant: tenant_phone.clone(),
                updated_at: Timestamp::now().to_string(),
                time_zone: None,
            },
        )
        .await
        .unwrap();
    assert!(linked);
    l.store
        .put_language_preference(
            &tenant,
            &Preference {
                language: Language::Pt,
                confidence: 0.9,
                at: Timestamp::now().to_string(),
                message_id: ulid::Ulid::new().to_string(),
            },
        )
        .await
        .unwrap();
    let e = l.event(
        "invoice.overdue",
        json!({"phone": tenant_phone, "invoice_id": "L-2"}),
    );
    let a = l.fire(&rule, &e).await.unwrap();
    assert_eq!(l.body(&a).await, "A fatura L-2 está vencida.");

    // A tenant recipient known only to the Collections Monitor, Spanish there.
    let monitor_phone = unique_phone();
    let monitor_tenant = format!("t-{}", ulid::Ulid::new());
    l.stack
        .add_tenant_speaking(&monitor_tenant, &monitor_phone, "es")
        .await;
    let by_tenant = l.rule(reminder(
        &l.source,
        json!({"recipient": {"tenant_id": "$.detail.tenant_id"}}),
    ));
    let e = l.event(
        "invoice.overdue",
        json!({"tenant_id": monitor_tenant, "invoice_id": "L-3"}),
    );
    let a = l.fire(&by_tenant, &e).await.unwrap();
    assert_eq!(a.outcome, Outcome::Scheduled, "{a:?}");
    let m = l.message(&a).await;
    assert_eq!(
        m.to_e164.as_str(),
        Address::parse(&monitor_phone).unwrap().e164.as_str()
    );
    assert_eq!(l.body(&a).await, "La factura L-3 está vencida.");
}

#[tokio::test]
async fn one_business_fact_makes_one_message_however_often_it_is_sent() {
    let l = local("dedupe").await;
    let rule = l.rule(reminder(&l.source, json!({"timing": {"delay": "P1D"}})));
    let phone = unique_phone();
    let detail = json!({"phone": phone, "invoice_id": "D-1"});
    // 50 producer retries at once, each with a new event id.
    let events: Vec<Event> = (0..50)
        .map(|_| l.event("invoice.overdue", detail.clone()))
        .collect();
    let outcomes = futures::future::join_all(events.iter().map(|e| l.fire(&rule, e))).await;
    let scheduled = outcomes
        .iter()
        .flatten()
        .filter(|a| a.outcome == Outcome::Scheduled)
        .count();
    let deduplicated = outcomes
        .iter()
        .flatten()
        .filter(|a| a.outcome == Outcome::Deduplicated)
        .count();
    assert_eq!((scheduled, deduplicated), (1, 49));
    assert_eq!(l.messages_to(&phone).await.len(), 1);
    // The same event again (an SQS redelivery): nothing new, not even an activity entry.
    let first = events
        .iter()
        .zip(&outcomes)
        .find(|(_, a)| a.as_ref().is_some_and(|a| a.outcome == Outcome::Scheduled))
        .unwrap()
        .0;
    assert_eq!(l.fire(&rule, first).await, None);
    assert_eq!(l.messages_to(&phone).await.len(), 1);
}

#[tokio::test]
async fn cancel_on_cancels_the_pending_message_of_the_same_key() {
    let l = local("cancel").await;
    let phone = unique_phone();
    // Scheduled a day out, and queued ten minutes out (already released to the queue).
    for (timing, state) in [
        (json!({"delay": "P1D"}), PipelineState::Scheduled),
        (json!({"delay": "PT10M"}), PipelineState::Queued),
    ] {
        let rule = l.rule(reminder(&l.source, json!({ "timing": timing })));
        let now = Timestamp::now().to_string();
        let invoice = format!("C-{}", ulid::Ulid::new());
        let e = l.event_at(
            "invoice.overdue",
            json!({"phone": phone, "invoice_id": invoice}),
            &now,
        );
        let a = l.fire(&rule, &e).await.unwrap();
        assert_eq!(a.state, Some(state));
        // Another invoice's payment cancels nothing.
        let other = l.event("payment.received", json!({"invoice_id": "someone-else"}));
        let c = l
            .engine
            .cancel(&rule, &other, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(c.outcome, Outcome::CancelTooLate);
        assert_eq!(l.message(&a).await.status, state);

        let paid = l.event("payment.received", json!({"invoice_id": invoice}));
        let c = l
            .engine
            .cancel(&rule, &paid, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(c.outcome, Outcome::Canceled, "{c:?}");
        assert_eq!(c.message_id, a.message_id);
        let m = l.message(&a).await;
        assert_eq!(m.status, PipelineState::Canceled);
        assert_eq!(m.status_reason.as_deref(), Some("event"));
        // The overdue event again changes nothing: its key is spent.
        let again = l.fire(&rule, &e).await;
        assert_eq!(again, None);
        assert_eq!(l.message(&a).await.status, PipelineState::Canceled);
    }
}

#[tokio::test]
async fn a_cap_limits_a_rules_messages_to_one_recipient() {
    let l = local("cap").await;
    let rule = l.rule(reminder(
        &l.source,
        json!({"cap": {"max": 2, "per": "P1D"}, "timing": {"delay": "P1D"}}),
    ));
    let phone = unique_phone();
    let mut outcomes = Vec::new();
    for i in 0..3 {
        let e = l.event(
            "invoice.overdue",
            json!({"phone": phone, "invoice_id": format!("K-{i}")}),
        );
        outcomes.push(l.fire(&rule, &e).await.unwrap().outcome);
    }
    assert_eq!(
        outcomes,
        vec![Outcome::Scheduled, Outcome::Scheduled, Outcome::Capped]
    );
    assert_eq!(l.messages_to(&phone).await.len(), 2);
    // Another recipient has its own allowance.
    let other = unique_phone();
    let e = l.event(
        "invoice.overdue",
        json!({"phone": other, "invoice_id": "K-9"}),
    );
    assert_eq!(l.fire(&rule, &e).await.unwrap().outcome, Outcome::Scheduled);
    // The cap item names the number: erasing the number removes it.
    l.store.put_rule(&rule, None).await.unwrap();
    let e164 = Address::parse(&phone).unwrap().e164;
    let counts = l
        .store
        .erase_contact(&e164, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(counts.rule_caps, 1);
    let cap = l
        .store
        .items(&[(
            keys::rule_cap_pk(&rule.rule_id, &e164),
            keys::RULE_CAP_SK.to_owned(),
        )])
        .await
        .unwrap();
    assert!(cap.is_empty());
}

#[tokio::test]
async fn what_blocks_a_firing_is_recorded_and_nothing_is_sent() {
    let l = local("blocked").await;
    let phone = unique_phone();

    // Shadow mode: what it would do, and no message.
    let shadow = l.rule(reminder(&l.source, json!({"mode": "shadow"})));
    let e = l.event(
        "invoice.overdue",
        json!({"phone": phone, "invoice_id": "B-1"}),
    );
    let a = l.fire(&shadow, &e).await.unwrap();
    assert_eq!(a.outcome, Outcome::Shadow);
    assert_eq!(a.state, Some(PipelineState::Queued));
    assert!(a.message_id.is_none());

    // No number in the event, or none for the tenant.
    let e = l.event("invoice.overdue", json!({"invoice_id": "B-2"}));
    let a = l
        .fire(&l.rule(reminder(&l.source, json!({}))), &e)
        .await
        .unwrap();
    assert_eq!(a.outcome, Outcome::RecipientUnresolved);
    let by_tenant = l.rule(reminder(
        &l.source,
        json!({"recipient": {"tenant_id": "$.detail.tenant_id"}}),
    ));
    let e = l.event(
        "invoice.overdue",
        json!({"tenant_id": "t-nobody-knows", "invoice_id": "B-3"}),
    );
    let a = l.fire(&by_tenant, &e).await.unwrap();
    assert_eq!(a.outcome, Outcome::RecipientUnresolved);

    // A template that fails on this event, and one that renders too long.
    let e = l.event(
        "invoice.overdue",
        json!({"phone": phone, "invoice_id": "B-4"}),
    );
    let missing = l.rule(reminder(
        &l.source,
        json!({"template": {"default": "Hi {{ detail.name }}"}}),
    ));
    let a = l.fire(&missing, &e).await.unwrap();
    assert_eq!(a.outcome, Outcome::TemplateFailed);
    let long = l.rule(reminder(
        &l.source,
        json!({"template": {"default": "{% for i in range(40) %}{{ detail.filler }}{% endfor %}"}}),
    ));
    let e = l.event(
        "invoice.overdue",
        json!({"phone": phone, "invoice_id": "B-5", "filler": "x".repeat(100)}),
    );
    let a = l.fire(&long, &e).await.unwrap();
    assert_eq!(a.outcome, Outcome::TemplateFailed);
    assert!(a.reason.unwrap().contains("segment"));
    assert!(l.messages_to(&phone).await.is_empty());

    // An opted-out recipient.
    let address = Address::parse(&phone).unwrap();
    l.store
        .record_opt_out(
            &address.e164,
            "STOP",
            &ulid::Ulid::new().to_string(),
            &Timestamp::now().to_string(),
        )
        .await
        .unwrap();
    let e = l.event(
        "invoice.overdue",
        json!({"phone": phone, "invoice_id": "B-6"}),
    );
    let a = l
        .fire(&l.rule(reminder(&l.source, json!({}))), &e)
        .await
        .unwrap();
    assert_eq!(a.outcome, Outcome::OptedOut);
    assert!(l.messages_to(&phone).await.is_empty());
}

#[tokio::test]
async fn no_rule_fires_on_an_event_about_a_rules_message() {
    let l = local("loop").await;
    let router = EventRouter::new(
        l.engine.clone(),
        RuleCache::new(l.store.clone(), Duration::from_secs(1)),
    );
    let rule = l.rule(json!({
        "name": "answers every status",
        "match": {"source": ["parley"], "detail-type": ["sms.status_changed"]},
        "recipient": {"phone": "$.detail.to"},
        "template": {"default": "status {{ detail.status }}"},
    }));
    l.store.put_rule(&rule, None).await.unwrap();
    let phone = unique_phone();
    let cause = json!({"rule_id": rule.rule_id, "rule_version": 1, "event_id": "e",
        "source": "parley", "detail_type": "sms.status_changed", "dedupe_key": "k"});
    let event = |cause: Value| {
        Event::from_json(json!({
            "version": "0", "id": ulid::Ulid::new().to_string(), "source": "parley",
            "detail-type": "sms.status_changed", "time": Timestamp::now().to_string(),
            "detail": {"to": phone, "status": "delivered", "cause": cause},
        }))
        .unwrap()
    };
    let guarded = router.route(&event(cause), Timestamp::now()).await.unwrap();
    assert!(guarded.loop_guarded);
    assert!(guarded.activity.is_empty());
    // The same event about a message no rule made does fire.
    let fired = router
        .route(&event(Value::Null), Timestamp::now())
        .await
        .unwrap();
    assert!(!fired.loop_guarded);
    assert_eq!(fired.activity.len(), 1);
    assert_eq!(fired.activity[0].outcome, Outcome::Scheduled);
}

// ---- The running stack: the API, the bus, the router and the worker. ----

/// The router trusts its copy of the rules for `RULES_CACHE_SECONDS` (1 s on the local
/// stack): a rule applies to events that arrive after that.
async fn rules_reach_the_router() {
    tokio::time::sleep(Duration::from_millis(2100)).await;
}

/// What these tests do with the running stack.
trait RulesStack {
    async fn add_tenant_speaking(&self, tenant_id: &str, phone: &str, language: &str);
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply;
    async fn put_bus_event(&self, source: &str, detail_type: &str, detail: Value);
    async fn queued_with_cause(&self, rule_id: &str) -> Vec<Value>;
}

impl RulesStack for Stack {
    /// A tenant at the Collections Monitor stub whose preferred language is `language`.
    async fn add_tenant_speaking(&self, tenant_id: &str, phone: &str, language: &str) {
        let resp = self
            .http
            .post(format!("{}/_stub/tenants", self.monitor()))
            .json(&json!({"tenant_id": tenant_id, "name": "Test Tenant",
                "phone_numbers": [phone], "preferred_language": language}))
            .send()
            .await
            .expect("monitor stub reachable");
        assert!(resp.status().is_success());
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.gateway))
            .bearer_auth(&self.api_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        read(req.send().await.expect("gateway reachable")).await
    }

    async fn put_bus_event(&self, source: &str, detail_type: &str, detail: Value) {
        let prefix = self.env.get("LOCAL_QUEUE_PREFIX").unwrap();
        let out = aws_sdk_eventbridge::Client::new(&self.sdk)
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(format!("{prefix}EventBus"))
                    .source(source)
                    .detail_type(detail_type)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_entry_count, 0);
    }

    async fn queued_with_cause(&self, rule_id: &str) -> Vec<Value> {
        let page = self
            .get("/queue?limit=200", Some(&self.api_key))
            .await
            .json();
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["cause"]["rule_id"] == rule_id)
            .cloned()
            .collect()
    }
}

#[tokio::test]
async fn the_invoice_overdue_walkthrough_on_the_running_stack() {
    let stack = stack().await;
    let source = format!("billing.{}", ulid::Ulid::new().to_string().to_lowercase());
    let tenant = format!("t-{}", ulid::Ulid::new());
    let phone = unique_phone();
    stack.add_tenant_speaking(&tenant, &phone, "es").await;
    let spec = json!({
        "name": "Invoice overdue reminder",
        "match": {"source": [source], "detail-type": ["invoice.overdue"]},
        "recipient": {"tenant_id": "$.detail.tenant_id"},
        "template": {
            "en": "Hi! Invoice {{ detail.invoice_id }} for {{ detail.amount }} is overdue.",
            "es": "¡Hola! La factura {{ detail.invoice_id }} de {{ detail.amount }} está vencida.",
            "default": "Invoice {{ detail.invoice_id }} is overdue."
        },
        "timing": {"at": "$.detail.due_date", "offset": "P1D", "local_time": "10:00"},
        "dedupe": "invoice-{{ detail.invoice_id }}",
        "cancel_on": [{"source": [source], "detail-type": ["payment.received"]}],
        "workflow_type": "collections",
        "workflow_id": "{{ detail.invoice_id }}"
    });
    let created = stack
        .admin(reqwest::Method::POST, "/rules", Some(spec))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let rule_id = created.json()["rule_id"].as_str().unwrap().to_owned();
    rules_reach_the_router().await;

    let overdue = json!({"tenant_id": tenant, "invoice_id": "INV-1001", "amount": "$1,250.00",
        "due_date": "2030-01-15"});
    stack
        .put_bus_event(&source, "invoice.overdue", overdue.clone())
        .await;
    let queued = eventually(90, "the reminder in GET /queue", || async {
        let found = stack.queued_with_cause(&rule_id).await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(queued.len(), 1);
    let m = &queued[0];
    assert_eq!(m["status"], "scheduled");
    assert_eq!(m["cause"]["detail_type"], "invoice.overdue");
    assert_eq!(m["cause"]["dedupe_key"], "invoice-INV-1001");
    assert_eq!(m["workflow_id"], "INV-1001");
    // 10:00 on 16 January in Los Angeles (+1 628).
    assert_eq!(m["send_at"], "2030-01-16T18:00:00.000Z");
    let message_id = m["message_id"].as_str().unwrap().to_owned();
    let full = stack
        .get(&format!("/messages/{message_id}"), Some(&stack.api_key))
        .await
        .json();
    assert_eq!(
        full["body"],
        "¡Hola! La factura INV-1001 de $1,250.00 está vencida."
    );
    assert_eq!(full["cause"]["rule_id"], rule_id.as_str());

    // The payment arrives through POST /events and cancels it.
    let paid = stack
        .admin(
            reqwest::Method::POST,
            "/events",
            Some(
                json!({"Entries": [{"Source": source, "DetailType": "payment.received",
                "Detail": {"invoice_id": "INV-1001"}}]}),
            ),
        )
        .await;
    assert_eq!(paid.status, 202, "{}", paid.body);
    assert_eq!(paid.json()["event_ids"].as_array().unwrap().len(), 1);
    eventually(90, "the reminder canceled", || async {
        let m = stack
            .get(&format!("/messages/{message_id}"), Some(&stack.api_key))
            .await
            .json();
        (m["status"] == "canceled").then_some(())
    })
    .await;

    // The overdue event again: deduplicated, nothing changes.
    stack
        .put_bus_event(&source, "invoice.overdue", overdue)
        .await;
    let activity = eventually(90, "the second overdue event recorded", || async {
        let page = stack
            .admin(
                reqwest::Method::GET,
                &format!("/rules/{rule_id}/activity"),
                None,
            )
            .await
            .json();
        let entries = page["activity"].as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .any(|a| a["outcome"] == "deduplicated")
            .then_some(entries)
    })
    .await;
    let outcomes: Vec<&str> = activity
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"scheduled") && outcomes.contains(&"canceled"),
        "{outcomes:?}"
    );
    let m = stack
        .get(&format!("/messages/{message_id}"), Some(&stack.api_key))
        .await
        .json();
    assert_eq!(m["status"], "canceled");
    assert!(stack.queued_with_cause(&rule_id).await.is_empty());
    assert!(stack.sandbox_messages(&phone).await.is_empty());
}

#[tokio::test]
async fn a_cancel_racing_the_send_ends_sent_or_canceled_never_both() {
    let stack = stack().await;
    let source = format!("race.{}", ulid::Ulid::new().to_string().to_lowercase());
    let rule = stack
        .admin(
            reqwest::Method::POST,
            "/rules",
            Some(reminder(&source, json!({}))),
        )
        .await;
    assert_eq!(rule.status, 201, "{}", rule.body);
    let rule_id = rule.json()["rule_id"].as_str().unwrap().to_owned();
    rules_reach_the_router().await;
    let mut phones = Vec::new();
    for i in 0..4 {
        let phone = unique_phone();
        let invoice = format!("R-{i}");
        let entries = json!({"Entries": [
            {"Source": source, "DetailType": "invoice.overdue", "Detail": {"phone": phone, "invoice_id": invoice}},
            {"Source": source, "DetailType": "payment.received", "Detail": {"invoice_id": invoice}}
        ]});
        let r = stack
            .admin(reqwest::Method::POST, "/events", Some(entries))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        phones.push(phone);
    }
    for phone in &phones {
        let address = Address::parse(phone).unwrap();
        let pk = keys::conversation_pk(address.channel, &address.e164);
        let m = eventually(90, "a final state", || async {
            let (messages, _) = stack
                .store
                .messages_page(address.channel, &address.e164, 10, None)
                .await
                .unwrap();
            messages
                .into_iter()
                .next()
                .filter(|m| matches!(m.status, PipelineState::Canceled | PipelineState::Submitted))
        })
        .await;
        assert_eq!(m.pk, pk);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let at_twilio = stack.sandbox_messages(phone).await.len();
        match m.status {
            PipelineState::Canceled => assert_eq!(at_twilio, 0, "canceled yet sent"),
            _ => assert_eq!(at_twilio, 1, "submitted once"),
        }
    }
    let page = stack
        .admin(
            reqwest::Method::GET,
            &format!("/rules/{rule_id}/activity"),
            None,
        )
        .await;
    assert_eq!(page.status, 200);
}

#[tokio::test]
async fn the_rules_api_versions_previews_and_refuses_what_is_wrong() {
    let stack = stack().await;
    let source = format!("api.{}", ulid::Ulid::new().to_string().to_lowercase());
    let post = |body: Value| stack.admin(reqwest::Method::POST, "/rules", Some(body));

    // A template that does not compile: 400 with its line and column.
    let mut broken = reminder(&source, json!({}));
    broken["template"] = json!({"en": "Hello\n{{ detail.name "});
    let r = post(broken).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.json()["error"]["fields"]["template"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("line 2"), "{message}");
    // Unknown fields, bad patterns, cancel_on without dedupe: each named.
    let mut wrong = reminder(&source, json!({"cancel_onn": []}));
    wrong["match"] = json!({"source": "not-an-array"});
    wrong.as_object_mut().unwrap().remove("dedupe");
    let r = post(wrong).await;
    assert_eq!(r.status, 400);
    let fields = r.json()["error"]["fields"].clone();
    assert!(fields["request"].as_str().unwrap().contains("cancel_onn"));
    assert!(fields["match"].is_string());
    assert!(fields["cancel_on"].as_str().unwrap().contains("dedupe"));
    // Only admin keys.
    let send_key = stack.env.get("LOCAL_SEND_API_KEY").unwrap().to_owned();
    let r = read(
        stack
            .http
            .get(format!("{}/rules", stack.gateway))
            .bearer_auth(send_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 403);

    let created = post(reminder(&source, json!({}))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let rule = created.json();
    let id = rule["rule_id"].as_str().unwrap();
    assert_eq!(rule["version"], 1);
    assert_eq!(rule["match"]["detail-type"][0], "invoice.overdue");

    let mut changed = reminder(&source, json!({}));
    changed["template"] = json!({"default": "v2 {{ detail.invoice_id }}"});
    let r = stack
        .admin(reqwest::Method::PUT, &format!("/rules/{id}"), Some(changed))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["version"], 2);
    let v1 = stack
        .admin(
            reqwest::Method::GET,
            &format!("/rules/{id}?version=1"),
            None,
        )
        .await
        .json();
    assert_eq!(
        v1["template"]["default"],
        "Invoice {{ detail.invoice_id }} is overdue (default)."
    );

    // Preview: a saved rule with a sample event, and an unsaved one.
    let phone = unique_phone();
    let sample = json!({"source": source, "detail-type": "invoice.overdue",
        "detail": {"phone": phone, "invoice_id": "P-1"}});
    let p = stack
        .admin(
            reqwest::Method::POST,
            &format!("/rules/{id}/preview"),
            Some(json!({"event": sample})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let p = p.json();
    assert_eq!(p["matches"], true);
    assert_eq!(p["body"], "v2 P-1");
    assert_eq!(p["dedupe_key"], "invoice-P-1");
    assert_eq!(p["segments"], 1);
    assert_eq!(p["encoding"], "GSM-7");
    assert_eq!(p["would_send"], true);
    assert_eq!(p["checks"], json!([]));
    assert!(p["time_zone_source"].is_string());
    let p = stack
        .admin(
            reqwest::Method::POST,
            "/rules/preview",
            Some(json!({"rule": reminder(&source, json!({"recipient": {"phone": "$.detail.nope"}})), "event": sample})),
        )
        .await
        .json();
    assert_eq!(p["would_send"], false);
    assert_eq!(p["checks"][0]["check"], "recipient_unresolved");
    // Previews write nothing.
    assert!(stack.sandbox_messages(&phone).await.is_empty());
    let activity = stack
        .admin(reqwest::Method::GET, &format!("/rules/{id}/activity"), None)
        .await
        .json();
    assert_eq!(activity["activity"], json!([]));

    // Disabling keeps it, as a new version.
    let r = stack
        .admin(reqwest::Method::DELETE, &format!("/rules/{id}"), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(r.json()["version"], 3);
    let listed = stack
        .admin(reqwest::Method::GET, "/rules", None)
        .await
        .json();
    assert!(listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["rule_id"] == id && r["enabled"] == false));
    let r = stack
        .admin(
            reqwest::Method::GET,
            "/rules/01JNOSUCHRULE0000000000000",
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    // POST /events refuses Parley's own source.
    let r = stack
        .admin(
            reqwest::Method::POST,
            "/events",
            Some(json!({"Entries": [{"Source": "parley", "DetailType": "sms.received", "Detail": {}}]})),
        )
        .await;
    assert_eq!(r.status, 400);
}

/// Counts the DynamoDB requests a client sends, by operation.
#[derive(Debug, Clone, Default)]
struct Requests(Arc<std::sync::Mutex<Vec<String>>>);

impl aws_sdk_dynamodb::config::Intercept for Requests {
    fn name(&self) -> &'static str {
        "Requests"
    }

    fn read_before_transmit(
        &self,
        _: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        self.0.lock().unwrap().push(operation);
        Ok(())
    }
}

impl Requests {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[tokio::test]
async fn a_matching_event_costs_two_dynamodb_requests_and_others_none() {
    let l = local("requests").await;
    let requests = Requests::default();
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&l.stack.sdk)
            .interceptor(requests.clone())
            .build(),
    );
    let store = Store::new(client, l.store.table());
    let service = SendService::new(
        store.clone(),
        l.engine.service.queue.clone(),
        l.engine.service.policy.clone(),
    );
    let router = EventRouter::new(
        Engine::new(service, None),
        RuleCache::new(store.clone(), Duration::from_secs(3600)),
    );
    for i in 0..100 {
        let mut spec = reminder(&l.source, json!({"timing": {"delay": "P1D"}}));
        spec["match"]["detail"] = json!({"rule": [i]});
        let rule = l.rule(spec);
        l.store.put_rule(&rule, None).await.unwrap();
    }
    let phone = unique_phone();
    let event = |rule: i64, invoice: &str| {
        l.event(
            "invoice.overdue",
            json!({"phone": phone, "invoice_id": invoice, "rule": rule}),
        )
    };
    // The first event loads the rules (one Query per page); then they are cached.
    router
        .route(&event(-1, "warm-up"), Timestamp::now())
        .await
        .unwrap();
    assert!(requests.take().iter().all(|op| op == "Query"));

    let none = router
        .route(&event(-1, "R-0"), Timestamp::now())
        .await
        .unwrap();
    assert!(none.activity.is_empty());
    assert_eq!(requests.take(), Vec::<String>::new());

    let one = router
        .route(&event(7, "R-1"), Timestamp::now())
        .await
        .unwrap();
    assert_eq!(one.activity.len(), 1);
    assert_eq!(one.activity[0].outcome, Outcome::Scheduled);
    assert_eq!(requests.take(), vec!["BatchGetItem", "TransactWriteItems"]);
}

#[tokio::test]
async fn the_sample_router_event_fires_its_rule() {
    let l = local("sample-router").await;
    let rule = l.rule(json!({
        "name": "sample",
        "match": {"source": ["billing"], "detail-type": ["invoice.overdue"]},
        "recipient": {"phone": "$.detail.phone"},
        "template": {"default": "Invoice {{ detail.invoice_id }} is overdue."},
        "dedupe": "invoice-{{ detail.invoice_id }}",
    }));
    l.store.put_rule(&rule, None).await.unwrap();
    let router = EventRouter::new(
        l.engine.clone(),
        RuleCache::new(l.store.clone(), Duration::from_secs(1)),
    );
    let batch: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(include_str!("../events/event-router.json")).unwrap();
    let response = router.handle(batch).await;
    assert!(response.batch_item_failures.is_empty());
    let (activity, _) = l
        .store
        .activity_page(&rule.rule_id, 10, None)
        .await
        .unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0].outcome, Outcome::Scheduled);
    assert_eq!(activity[0].dedupe_key.as_deref(), Some("invoice-INV-1001"));
    assert_eq!(l.body(&activity[0]).await, "Invoice INV-1001 is overdue.");
}

#[tokio::test]
async fn the_sample_rules_request_is_a_preview() {
    let l = local("sample-rules").await;
    let (_, secrets) = l.stack.own_secrets(&l.stack.token, None).await;
    let handler = parley::handlers::rules::RulesHandler::new(l.engine.clone(), secrets, None);
    let req = lambda_http::request::from_str(include_str!("../events/rules.json")).unwrap();
    let response = handler.handle(req).await;
    assert_eq!(response.status(), 200);
    let body: Value = match response.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(body["matches"], true);
    assert_eq!(body["dedupe_key"], "invoice-INV-1001");
    assert_eq!(body["recipient"], "+14155550105");
    assert_eq!(body["would_send"], true, "{body}");
    assert!(body["body"].as_str().unwrap().contains("INV-1001"));
}

#[tokio::test]
async fn a_rule_answers_an_inbound_text_through_parleys_own_events() {
    let stack = stack().await;
    let tenant = format!("t-{}", ulid::Ulid::new());
    let phone = unique_phone();
    stack.add_tenant(&tenant, &[&phone]).await;
    let rule = stack
        .admin(
            reqwest::Method::POST,
            "/rules",
            Some(json!({
                "name": "acknowledge a tenant's text",
                "match": {"source": ["parley"], "detail-type": ["sms.received"],
                          "detail": {"tenant_id": [tenant], "keyword": [null]}},
                "recipient": {"phone": "$.detail.from"},
                "template": {"default": "Thanks, we got your message ({{ detail.message_id }})."},
                "dedupe": "ack-{{ detail.message_id }}",
                "quiet_hours": "bypass",
            })),
        )
        .await;
    assert_eq!(rule.status, 201, "{}", rule.body);
    let rule_id = rule.json()["rule_id"].as_str().unwrap().to_owned();
    rules_reach_the_router().await;

    let form = InboundForm::new(&stack, &phone, "The kitchen sink is leaking");
    assert_eq!(stack.post_inbound(&form).await.status, 200);
    // The processor publishes sms.received; the bus brings it to the router; the rule's
    // message is sent — and its own status events (which carry its cause) fire nothing.
    let sent = eventually(90, "the acknowledgement at the sandbox", || async {
        let messages = stack.sandbox_messages(&phone).await;
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0]["body"]
        .as_str()
        .unwrap()
        .starts_with("Thanks, we got your message"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.sandbox_messages(&phone).await.len(), 1);
    let activity = stack
        .admin(
            reqwest::Method::GET,
            &format!("/rules/{rule_id}/activity"),
            None,
        )
        .await
        .json();
    assert_eq!(activity["activity"].as_array().unwrap().len(), 1);
}
