use lambda_http::Error;
use parley::handlers::conversations::ConversationsHandler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let handler = ConversationsHandler::from_env().await?;
    parley::apigw::run(|req| handler.handle(req)).await
}
