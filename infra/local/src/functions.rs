//! The functions the local stack can run, by their logical id in `template.yaml`.

use std::collections::HashMap;
use std::sync::Arc;

use parley::handlers::conversations::ConversationsHandler;
use parley::handlers::dispatcher::Dispatcher;
use parley::handlers::event_router::EventRouter;
use parley::handlers::health::HealthHandler;
use parley::handlers::inbound_backfill::InboundBackfill;
use parley::handlers::inbound_processor::InboundProcessor;
use parley::handlers::inbound_sms::InboundSmsHandler;
use parley::handlers::rules::RulesHandler;
use parley::handlers::send_sms::SendSmsHandler;
use parley::handlers::send_worker::SendWorker;
use parley::handlers::status_callback::StatusCallbackHandler;
use parley::handlers::InitError;

use crate::event_sources::{ScheduleFunction, SqsFunction, StreamFunction};
use crate::gateway::HttpFunction;

macro_rules! function {
    ($ty:ty, $handler:expr) => {{
        let handler = Arc::new($handler);
        let f: $ty = Arc::new(move |input| {
            let handler = handler.clone();
            Box::pin(async move { handler.handle(input).await })
        });
        f
    }};
}

fn err(e: InitError) -> String {
    e.to_string()
}

/// Builds every HTTP function from the environment, as each one's `main` does at cold start.
pub async fn http_functions() -> Result<HashMap<String, HttpFunction>, String> {
    Ok(HashMap::from([
        (
            "InboundSmsFunction".to_owned(),
            function!(
                HttpFunction,
                InboundSmsHandler::from_env().await.map_err(err)?
            ),
        ),
        (
            "StatusCallbackFunction".to_owned(),
            function!(
                HttpFunction,
                StatusCallbackHandler::from_env().await.map_err(err)?
            ),
        ),
        (
            "SendSmsFunction".to_owned(),
            function!(HttpFunction, SendSmsHandler::from_env().await.map_err(err)?),
        ),
        (
            "ConversationsFunction".to_owned(),
            function!(
                HttpFunction,
                ConversationsHandler::from_env().await.map_err(err)?
            ),
        ),
        (
            "RulesFunction".to_owned(),
            function!(HttpFunction, RulesHandler::from_env().await.map_err(err)?),
        ),
        (
            "ConsoleFunction".to_owned(),
            function!(
                HttpFunction,
                parley_console::ConsoleHandler::from_env()
                    .await
                    .map_err(err)?
            ),
        ),
        (
            "HealthFunction".to_owned(),
            function!(HttpFunction, HealthHandler::from_env().await.map_err(err)?),
        ),
    ]))
}

/// Builds every SQS-triggered function from the environment.
pub async fn sqs_functions() -> Result<HashMap<String, SqsFunction>, String> {
    Ok(HashMap::from([
        (
            "SendWorkerFunction".to_owned(),
            function!(SqsFunction, SendWorker::from_env().await.map_err(err)?),
        ),
        (
            "EventRouterFunction".to_owned(),
            function!(SqsFunction, EventRouter::from_env().await.map_err(err)?),
        ),
    ]))
}

/// Builds every stream-triggered function from the environment.
pub async fn stream_functions() -> Result<HashMap<String, StreamFunction>, String> {
    let processor = Arc::new(InboundProcessor::from_env().await.map_err(err)?);
    let f: StreamFunction = Arc::new(move |event| {
        let processor = processor.clone();
        Box::pin(async move { processor.handle_stream(event).await })
    });
    Ok(HashMap::from([("InboundProcessorFunction".to_owned(), f)]))
}

/// Builds every function with a `Schedule` event from the environment.
pub async fn schedule_functions() -> Result<HashMap<String, ScheduleFunction>, String> {
    let dispatcher = Arc::new(Dispatcher::from_env().await.map_err(err)?);
    let processor = Arc::new(InboundProcessor::from_env().await.map_err(err)?);
    let dispatch: ScheduleFunction = Arc::new(move |event| {
        let dispatcher = dispatcher.clone();
        Box::pin(async move { dispatcher.handle(event).await })
    });
    // Lambda would count a failed reconciliation as an invocation error; the schedule runner
    // sees it as an answer with an `error` (the processor has logged it with its cause).
    let reconcile: ScheduleFunction = Arc::new(move |event| {
        let processor = processor.clone();
        Box::pin(async move {
            let input = match serde_json::from_value(event) {
                Ok(input) => input,
                Err(e) => return serde_json::json!({ "error": e.to_string() }),
            };
            match processor.handle(input).await {
                Ok(output) => serde_json::to_value(output)
                    .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() })),
                Err(e) => serde_json::json!({
                    "errorType": e.kind(),
                    "error": parley::error::chain(&e),
                }),
            }
        })
    });
    let backfill = Arc::new(InboundBackfill::from_env().await.map_err(err)?);
    let backfill: ScheduleFunction = Arc::new(move |event| {
        let backfill = backfill.clone();
        Box::pin(async move {
            backfill
                .handle(event)
                .await
                .unwrap_or_else(|e| backfill_error(&e))
        })
    });
    Ok(HashMap::from([
        ("DispatcherFunction".to_owned(), dispatch),
        ("InboundProcessorFunction".to_owned(), reconcile),
        ("InboundBackfillFunction".to_owned(), backfill),
    ]))
}

/// A failed backfill as Lambda reports an invocation error.
pub fn backfill_error(e: &parley::handlers::inbound_backfill::BackfillError) -> serde_json::Value {
    serde_json::json!({ "errorType": e.kind(), "error": parley::error::chain(e) })
}
