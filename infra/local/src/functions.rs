//! The functions the local gateway can run, by their logical id in `template.yaml`.

use std::collections::HashMap;
use std::sync::Arc;

use parley::handlers::health::HealthHandler;
use parley::handlers::inbound_sms::InboundSmsHandler;

use crate::gateway::HttpFunction;

macro_rules! http_function {
    ($handler:expr) => {{
        let handler = Arc::new($handler);
        let f: HttpFunction = Arc::new(move |req| {
            let handler = handler.clone();
            Box::pin(async move { handler.handle(req).await })
        });
        f
    }};
}

/// Builds every HTTP function from the environment, as each one's `main` does at cold start.
pub async fn http_functions() -> Result<HashMap<String, HttpFunction>, String> {
    let err = |e: parley::handlers::InitError| e.to_string();
    Ok(HashMap::from([
        (
            "InboundSmsFunction".to_owned(),
            http_function!(InboundSmsHandler::from_env().await.map_err(err)?),
        ),
        (
            "HealthFunction".to_owned(),
            http_function!(HealthHandler::from_env().await.map_err(err)?),
        ),
    ]))
}
