use lambda_http::{run, service_fn, Error};
use parley_console::ConsoleHandler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let handler = ConsoleHandler::from_env().await?;
    run(service_fn(|req| async {
        Ok::<_, Error>(handler.handle(req).await)
    }))
    .await
}
