use lambda_http::Error;
use parley::handlers::inbound_sms::InboundSmsHandler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let handler = InboundSmsHandler::from_env().await?;
    parley::apigw::run(|req| handler.handle(req)).await
}
