//! The chaos suite's short form, and the fault switch a person uses (README, "Make the store
//! fail").
//!
//! Both start a stack of their own (`parley-local up` on free ports, with its own emulator)
//! instead of using the suite's: a store outage on the shared emulator would fail every test
//! running beside them, and scoping the faults to a resource prefix cannot help there, since
//! the suite's functions share one table. Their stack logs go to the suite's log directory,
//! so the log audit covers them too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use parley_chaos::stack::{self, Ports};
use parley_chaos::{load, Options};
use parley_e2e::*;
use parley_local::env::LocalEnv;
use serde_json::{json, Value};

fn log_path(name: &str) -> PathBuf {
    std::env::var_os("PARLEY_E2E_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| parley_local::env::repo_root().join("target/e2e"))
        .join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn under_every_fault_class_nothing_is_lost_duplicated_stuck_or_regressed() {
    for number in load::numbers() {
        record_sensitive("phone", &number);
    }
    let options = Options {
        duration: Duration::from_secs(24),
        rate: 3.0,
        store_down: Duration::from_secs(6),
        // The dispatcher polls Twilio for a status refused while the store was down at a
        // minute's granularity; a loaded machine (the whole suite beside it) needs more.
        settle: Duration::from_secs(300),
        ports: Ports::free().expect("free ports"),
        parley_local: parley_local_bin(),
        log: log_path("chaos-stack.log"),
    };
    let report = parley_chaos::run(&options).await.expect("the chaos run");
    println!("{report}");
    assert!(
        report.audit.sends_accepted >= 15 && report.audit.texts_received >= 15,
        "the load was too small to say anything:\n{report}"
    );
    assert!(
        report.not_injected.is_empty() && report.injection_errors.is_empty(),
        "a fault class was not injected:\n{report}"
    );
    let audit = &report.audit;
    assert!(audit.lost.is_empty(), "lost:\n{report}");
    assert!(audit.duplicated.is_empty(), "duplicated:\n{report}");
    assert!(audit.regressed.is_empty(), "regressed:\n{report}");
    assert!(audit.stuck.is_empty(), "stuck:\n{report}");
    assert_eq!(audit.sends_final, audit.sends_accepted, "{report}");
    assert_eq!(audit.texts_stored, audit.texts_received, "{report}");
    assert!(report.passed(), "{report}");
}

/// A stack of its own on free ports (the chaos run's settings, with `overrides`), logging to
/// `log` in the suite's log directory; stopped when the returned process is dropped.
fn own_stack(
    log: &str,
    overrides: &[(&str, &str)],
) -> (Ports, BTreeMap<String, String>, stack::StackProcess) {
    let ports = Ports::free().expect("free ports");
    let mut env = stack::environment(ports);
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let process =
        stack::start(&parley_local_bin(), &env, &log_path(log)).expect("a stack of its own");
    (ports, env, process)
}

/// `parley-local ARGS…` against the stack of `env`; its stdout, or a panic with its stderr.
fn parley_local(env: &BTreeMap<String, String>, args: &[&str]) -> String {
    let out = std::process::Command::new(parley_local_bin())
        .args(args)
        .envs(env)
        .output()
        .expect("target/debug/parley-local (cargo build -p parley-local)");
    assert!(
        out.status.success(),
        "parley-local {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The backfill's report: its last line (an EMF line comes first).
fn report_line(stdout: &str) -> Value {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("the backfill's report: {e}: {stdout}"))
}

/// The README's walkthrough, shortened: the store down, the sandbox texts Parley three times
/// (every webhook attempt refused), the fault lifted, the backfill run: each text stored once,
/// and a second backfill records nothing more.
#[tokio::test(flavor = "multi_thread")]
async fn texts_sent_while_the_store_is_down_are_all_stored_once_after_the_fault_is_lifted() {
    let (ports, env, _stack) = own_stack("fault-switch-stack.log", &[]);
    let local = LocalEnv::load().expect("infra/local.env");
    let parley_number = local.require("TWILIO_FROM_NUMBER").unwrap();
    let http = reqwest::Client::new();

    let opened = parley_local(&env, &["fault", "store-down", "--for", "60s"]);
    assert!(opened.contains("dynamodb unavailable"), "{opened}");

    let from = unique_phone();
    let mut sids = Vec::new();
    for i in 0..3 {
        let body = unique_body(&format!("Sent during the outage {i}"));
        let answer: Value = http
            .post(format!("{}/_sandbox/receive", ports.sandbox_url()))
            .json(&json!({"from": from, "to": parley_number, "body": body}))
            .send()
            .await
            .expect("sandbox")
            .json()
            .await
            .expect("sandbox JSON");
        assert_eq!(
            answer["webhook"]["delivered"], false,
            "the store is down, yet Parley acknowledged a text: {answer}"
        );
        let attempts = answer["webhook"]["attempts"].as_array().unwrap();
        // A 503 each (or, on a loaded machine, a read timeout), retried by the overrides.
        assert!(
            attempts.len() > 1
                && attempts
                    .iter()
                    .all(|a| a["response_status"] == 503 || a["error"] == "timeout"),
            "every attempt refused, and retried: {attempts:?}"
        );
        sids.push(answer["message"]["sid"].as_str().unwrap().to_owned());
    }
    let listed = parley_local(&env, &["fault", "list"]);
    assert!(listed.contains("requests faulted"), "{listed}");

    let cleared = parley_local(&env, &["fault", "clear"]);
    assert!(cleared.contains("every fault window ended"), "{cleared}");
    let since = parley::time::Timestamp::now()
        .minus(Duration::from_secs(3600))
        .to_string();
    let first = parley_local(&env, &["backfill", "--since", &since]);
    let first = report_line(&first);
    assert_eq!(first["recorded"], 3, "{first}");
    let again = parley_local(&env, &["backfill", "--since", &since]);
    let again = report_line(&again);
    assert_eq!(again["recorded"], 0, "{again}");

    let thread: Value = http
        .get(format!(
            "{}/conversations/{}",
            ports.gateway_url(),
            from.replace('+', "%2B")
        ))
        .bearer_auth(local.require("LOCAL_API_KEY").unwrap())
        .send()
        .await
        .expect("gateway")
        .json()
        .await
        .expect("conversation JSON");
    let stored: Vec<&str> = thread["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["twilio_sid"].as_str())
        .collect();
    for sid in &sids {
        assert_eq!(
            stored.iter().filter(|s| *s == sid).count(),
            1,
            "{sid} not stored exactly once: {stored:?}"
        );
    }
    assert_eq!(stored.len(), 3, "{stored:?}");
}

/// A status callback that meets a store outage is retried by Twilio (the `StatusCallback`
/// carries the connection overrides) and lands once the fault lifts, with no status poll:
/// the stack's poll is a day away, as it was deployed before the overrides.
///
/// The message is sent and recorded, then the store is made unavailable before its only
/// callback (`delivered`, planned seconds later) is made. The sandbox's first attempt is
/// answered 503; as soon as the test sees that, it lifts the fault, and a retry of the same
/// callback is accepted. Without the overrides the sandbox would not retry a 503 and the
/// message would stay `queued` at Parley until the poll.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_callback_refused_during_a_store_outage_is_retried_and_lands() {
    let (ports, env, _stack) = own_stack(
        "status-outage-stack.log",
        &[("STATUS_POLL_AFTER_SECONDS", "86400")],
    );
    let local = LocalEnv::load().expect("infra/local.env");
    let http = reqwest::Client::new();
    let to = unique_phone();
    let body = unique_body("Your appointment is confirmed");

    // One callback, `delivered`, long enough after the create for the worker to record the
    // message and the test to take the store down.
    let planned = http
        .post(format!("{}/_sandbox/callbacks", ports.sandbox_url()))
        .json(&json!({"to": to, "sequence": ["delivered"], "delay_ms": 8000}))
        .send()
        .await
        .expect("sandbox");
    assert!(planned.status().is_success(), "{planned:?}");
    let sent = http
        .post(format!(
            "{}{}",
            ports.gateway_url(),
            parley::handlers::send_sms::ROUTE
        ))
        .bearer_auth(local.require("LOCAL_SEND_API_KEY").unwrap())
        .json(&json!({"to": to, "body": body}))
        .send()
        .await
        .expect("gateway");
    assert_eq!(sent.status().as_u16(), 202);
    let accepted: Value = sent.json().await.expect("the send's JSON");
    let id = accepted["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();
    let read_key = local.require("LOCAL_API_KEY").unwrap().to_owned();
    let message = || {
        let (http, url, key) = (
            http.clone(),
            format!("{}/messages/{id}", ports.gateway_url()),
            read_key.clone(),
        );
        async move {
            let answer = http.get(url).bearer_auth(key).send().await.ok()?;
            answer.status().is_success().then_some(())?;
            answer.json::<Value>().await.ok()
        }
    };
    let recorded = eventually(30, "the worker records the message", || async {
        message().await.filter(|m| m["twilio_sid"].is_string())
    })
    .await;
    assert_ne!(recorded["delivery_status"], "delivered", "{recorded}");

    let opened = parley_local(&env, &["fault", "store-down", "--for", "120s"]);
    assert!(opened.contains("dynamodb unavailable"), "{opened}");
    let sandbox_message = || {
        let (http, url) = (
            http.clone(),
            format!(
                "{}/_sandbox/messages?to={}",
                ports.sandbox_url(),
                to.replace('+', "%2B")
            ),
        );
        async move {
            let listed: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            listed["messages"].as_array()?.first().cloned()
        }
    };
    let refused = eventually(60, "the callback meets the outage", || async {
        sandbox_message()
            .await
            .filter(|m| !m["callbacks"].as_array().unwrap().is_empty())
    })
    .await;
    let cleared = parley_local(&env, &["fault", "clear"]);
    assert!(cleared.contains("every fault window ended"), "{cleared}");
    let first = &refused["callbacks"][0];
    assert!(
        first["response_status"] == 503 || first["error"] == "timeout",
        "the first attempt was made while the store was up, too early for this test: {refused}"
    );

    let delivered = eventually(60, "the retried callback lands", || async {
        message()
            .await
            .filter(|m| m["delivery_status"] == "delivered")
    })
    .await;
    let sources: Vec<&str> = delivered["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["status"] == "delivered")
        .filter_map(|h| h["source"].as_str())
        .collect();
    assert_eq!(sources, ["callback"], "{delivered}");
    let attempts = sandbox_message().await.expect("the sandbox's message")["callbacks"]
        .as_array()
        .unwrap()
        .clone();
    println!("the callback's attempts at the sandbox: {attempts:?}");
    assert!(attempts.len() >= 2, "retried: {attempts:?}");
    assert_eq!(
        attempts.last().unwrap()["response_status"],
        204,
        "{attempts:?}"
    );
}
