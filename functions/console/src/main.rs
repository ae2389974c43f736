use lambda_http::Error;
use parley_console::ConsoleHandler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let handler = ConsoleHandler::from_env().await?;
    parley::apigw::run(|req| handler.handle(req)).await
}
