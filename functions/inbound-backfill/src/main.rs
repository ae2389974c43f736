use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use parley::handlers::inbound_backfill::InboundBackfill;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let backfill = InboundBackfill::from_env().await?;
    // A failed run is an invocation error, so the function's error alarm sees it.
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        backfill
            .handle(event.payload)
            .await
            .map_err(|e| Diagnostic {
                error_type: e.kind().to_owned(),
                error_message: parley::error::chain(&e),
            })
    }))
    .await
}
