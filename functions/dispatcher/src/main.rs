use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use parley::handlers::dispatcher::Dispatcher;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let dispatcher = Dispatcher::from_env().await?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(dispatcher.handle(event.payload).await)
    }))
    .await
}
