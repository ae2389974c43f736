use lambda_http::{run, service_fn, Error};
use parley::handlers::status_callback::StatusCallbackHandler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let handler = StatusCallbackHandler::from_env().await?;
    run(service_fn(|req| async {
        Ok::<_, Error>(handler.handle(req).await)
    }))
    .await
}
