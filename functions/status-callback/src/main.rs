use lambda_http::Error;
use parley::handlers::status_callback::StatusCallbackHandler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let handler = StatusCallbackHandler::from_env().await?;
    parley::apigw::run(|req| handler.handle(req)).await
}
