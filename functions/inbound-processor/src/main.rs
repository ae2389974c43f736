use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use parley::handlers::inbound_processor::{InboundProcessor, ProcessorInput};

#[tokio::main]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let processor = InboundProcessor::from_env().await?;
    run(service_fn(|event: LambdaEvent<ProcessorInput>| async {
        Ok::<_, Error>(processor.handle(event.payload).await)
    }))
    .await
}
