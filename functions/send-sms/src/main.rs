use lambda_http::Error;
use parley::handlers::send_sms::SendSmsHandler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let handler = SendSmsHandler::from_env().await?;
    parley::apigw::run(|req| handler.handle(req)).await
}
