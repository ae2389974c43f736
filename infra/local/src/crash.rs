//! Crashing a local function mid-batch, on demand (the chaos suite, docs/reliability.md).
//!
//! Deployed, a worker can die in the middle of a batch: a timeout, an out-of-memory kill, a
//! host failure. Its records were received and not deleted, so SQS hands them out again once
//! their visibility timeout has run out, and whatever the worker had done (a claim, a message
//! created at Twilio, a SID recorded or not) must be picked up by the next one.
//!
//! `POST /_local/crash` `{"function": "SendWorkerFunction", "after_ms"?: 50,
//! "redeliver_after_s"?: N}` arms a crash: the function's next batch still running `after_ms`
//! into its invocation is abandoned there (its future dropped, as the process dying would drop
//! it), and reported to the event source as failed in full, so nothing of it is deleted. With
//! `redeliver_after_s` the batch's records become visible again after N seconds, as with a
//! queue whose visibility timeout were N (the template's is minutes, too long for a short
//! test); without it they wait for the queue's own timeout. A batch that finishes sooner
//! leaves the crash armed for the next one. `GET /_local/crashes` counts the crashes armed,
//! the batches abandoned and their records, per function.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::event_sources::SqsFunction;

/// How far into an invocation a crash hits when the request does not say.
const DEFAULT_AFTER_MS: u64 = 50;

/// One armed crash.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
struct Arming {
    after_ms: u64,
    redeliver_after_s: Option<i32>,
}

/// What the crash hook did to one function so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrashCount {
    /// Crashes armed and not fired yet.
    pub armed: usize,
    /// Batches abandoned mid-invocation.
    pub batches: u64,
    /// Records in those batches.
    pub records: u64,
}

/// The crashes of the local stack's SQS functions: armed through the control route, fired by
/// the wrappers [`Crashes::wrap`] puts around the functions.
#[derive(Default)]
pub struct Crashes {
    state: Mutex<CrashState>,
}

#[derive(Default)]
struct CrashState {
    armed: HashMap<String, Vec<Arming>>,
    counts: BTreeMap<String, CrashCount>,
}

impl Crashes {
    fn state(&self) -> std::sync::MutexGuard<'_, CrashState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn arm(&self, function: &str, arming: Arming) -> Result<(), String> {
        let mut state = self.state();
        let Some(count) = state.counts.get_mut(function) else {
            let known: Vec<&String> = state.counts.keys().collect();
            return Err(format!(
                "no SQS function {function} runs here (known: {known:?})"
            ));
        };
        count.armed += 1;
        state
            .armed
            .entry(function.to_owned())
            .or_default()
            .push(arming);
        Ok(())
    }

    /// The first crash armed for `function`, left armed.
    fn armed(&self, function: &str) -> Option<Arming> {
        self.state()
            .armed
            .get(function)
            .and_then(|a| a.first().copied())
    }

    /// The first armed crash of `function` fired on a batch of `records`.
    fn fired(&self, function: &str, records: usize) {
        let mut state = self.state();
        if let Some(armed) = state.armed.get_mut(function) {
            if !armed.is_empty() {
                armed.remove(0);
            }
        }
        let count = state.counts.entry(function.to_owned()).or_default();
        count.armed = count.armed.saturating_sub(1);
        count.batches += 1;
        count.records += records as u64;
    }

    pub fn counts(&self) -> BTreeMap<String, CrashCount> {
        self.state().counts.clone()
    }

    /// `function` run through the crash hook: an invocation still running when an armed
    /// crash hits is dropped and its whole batch reported failed.
    pub fn wrap(
        self: &Arc<Self>,
        name: &str,
        function: SqsFunction,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
    ) -> SqsFunction {
        self.state().counts.entry(name.to_owned()).or_default();
        let crashes = self.clone();
        let name = name.to_owned();
        Arc::new(move |event: SqsEvent| {
            let (crashes, name, function) = (crashes.clone(), name.clone(), function.clone());
            let (sqs, queue_url) = (sqs.clone(), queue_url.clone());
            Box::pin(async move {
                let Some(arming) = crashes.armed(&name) else {
                    return function(event).await;
                };
                let records: Vec<(String, Option<String>)> = event
                    .records
                    .iter()
                    .map(|r| {
                        (
                            r.message_id.clone().unwrap_or_default(),
                            r.receipt_handle.clone(),
                        )
                    })
                    .collect();
                let after = Duration::from_millis(arming.after_ms);
                match tokio::time::timeout(after, function(event)).await {
                    Ok(response) => response,
                    Err(_) => {
                        crashes.fired(&name, records.len());
                        tracing::warn!(function = %name, records = records.len(), after_ms = arming.after_ms, "crashed mid-batch (crash hook)");
                        if let Some(seconds) = arming.redeliver_after_s {
                            redeliver_after(&sqs, &queue_url, &records, seconds).await;
                        }
                        let mut response = SqsBatchResponse::default();
                        response.batch_item_failures = records
                            .into_iter()
                            .map(|(id, _)| {
                                let mut failure = BatchItemFailure::default();
                                failure.item_identifier = id;
                                failure
                            })
                            .collect();
                        response
                    }
                }
            })
        })
    }
}

/// Makes the abandoned records visible again after `seconds`, as a queue with that
/// visibility timeout would.
async fn redeliver_after(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    records: &[(String, Option<String>)],
    seconds: i32,
) {
    let entries: Vec<_> = records
        .iter()
        .enumerate()
        .filter_map(|(i, (_, handle))| {
            ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(handle.clone())
                .visibility_timeout(seconds)
                .build()
                .ok()
        })
        .collect();
    for chunk in entries.chunks(10) {
        if let Err(e) = sqs
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(chunk.to_vec()))
            .send()
            .await
        {
            // The records come back after the queue's own timeout instead.
            tracing::warn!(error = %aws_sdk_sqs::Error::from(e), "crash hook: could not shorten the visibility timeout");
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrashRequest {
    function: String,
    after_ms: Option<u64>,
    redeliver_after_s: Option<i32>,
}

/// The control routes, `/_local/crash` and `/_local/crashes`.
pub fn router(crashes: Arc<Crashes>) -> axum::Router {
    axum::Router::new()
        .route("/_local/crash", post(arm))
        .route("/_local/crashes", get(list))
        .with_state(crashes)
}

async fn arm(State(crashes): State<Arc<Crashes>>, body: axum::body::Bytes) -> Response {
    let request: CrashRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid JSON body: {e}")})),
            )
                .into_response()
        }
    };
    if request
        .redeliver_after_s
        .is_some_and(|s| !(0..=43_200).contains(&s))
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "redeliver_after_s must be from 0 to 43200"})),
        )
            .into_response();
    }
    let arming = Arming {
        after_ms: request.after_ms.unwrap_or(DEFAULT_AFTER_MS),
        redeliver_after_s: request.redeliver_after_s,
    };
    match crashes.arm(&request.function, arming) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(
                json!({"function": request.function, "after_ms": arming.after_ms,
                        "redeliver_after_s": arming.redeliver_after_s}),
            ),
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn list(State(crashes): State<Arc<Crashes>>) -> Response {
    Json(json!({ "crashes": crashes.counts() })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    fn sqs_client() -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    fn event(ids: &[&str]) -> SqsEvent {
        let mut event = SqsEvent::default();
        for id in ids {
            let mut record = SqsMessage::default();
            record.message_id = Some((*id).to_owned());
            event.records.push(record);
        }
        event
    }

    /// A function that takes `ms` per batch and counts the batches it finished.
    fn slow_function(ms: u64, finished: Arc<Mutex<u32>>) -> SqsFunction {
        Arc::new(move |_event: SqsEvent| {
            let finished = finished.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                *finished.lock().unwrap() += 1;
                SqsBatchResponse::default()
            })
        })
    }

    #[tokio::test]
    async fn an_armed_crash_abandons_the_running_batch_and_fails_all_of_it() {
        let crashes = Arc::new(Crashes::default());
        let finished = Arc::new(Mutex::new(0));
        let f = crashes.wrap(
            "SendWorkerFunction",
            slow_function(500, finished.clone()),
            sqs_client(),
            "http://127.0.0.1:1/q".into(),
        );
        crashes
            .arm(
                "SendWorkerFunction",
                Arming {
                    after_ms: 10,
                    redeliver_after_s: None,
                },
            )
            .unwrap();
        let response = f(event(&["a", "b"])).await;
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["a", "b"]);
        assert_eq!(*finished.lock().unwrap(), 0, "the batch was not abandoned");
        let count = &crashes.counts()["SendWorkerFunction"];
        assert_eq!((count.armed, count.batches, count.records), (0, 1, 2));
        // Fired once: the next batch runs to its end.
        let response = f(event(&["c"])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(*finished.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_batch_that_ends_before_the_crash_leaves_it_armed() {
        let crashes = Arc::new(Crashes::default());
        let finished = Arc::new(Mutex::new(0));
        let f = crashes.wrap(
            "SendWorkerFunction",
            slow_function(0, finished.clone()),
            sqs_client(),
            "http://127.0.0.1:1/q".into(),
        );
        crashes
            .arm(
                "SendWorkerFunction",
                Arming {
                    after_ms: 2_000,
                    redeliver_after_s: None,
                },
            )
            .unwrap();
        assert!(f(event(&["a"])).await.batch_item_failures.is_empty());
        assert_eq!(crashes.counts()["SendWorkerFunction"].armed, 1);
        assert_eq!(crashes.counts()["SendWorkerFunction"].batches, 0);
    }

    #[test]
    fn only_known_functions_can_be_crashed() {
        let crashes = Crashes::default();
        let arming = Arming {
            after_ms: 1,
            redeliver_after_s: None,
        };
        assert!(crashes.arm("NoSuchFunction", arming).is_err());
    }
}
