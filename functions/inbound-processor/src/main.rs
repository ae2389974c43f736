use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use parley::handlers::inbound_processor::{InboundProcessor, ProcessorInput};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let processor = InboundProcessor::from_env().await?;
    // A failed reconciliation is an invocation error: Lambda counts it in `Errors`, so the
    // function's error alarm sees it. Stream batches report their failures per record.
    run(service_fn(|event: LambdaEvent<ProcessorInput>| async {
        processor
            .handle(event.payload)
            .await
            .map_err(|e| Diagnostic {
                error_type: e.kind().to_owned(),
                error_message: parley::error::chain(&e),
            })
    }))
    .await
}
