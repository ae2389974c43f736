use lambda_http::Error;
use parley::handlers::rules::RulesHandler;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    parley::telemetry::init();
    let handler = RulesHandler::from_env().await?;
    parley::apigw::run(|req| handler.handle(req)).await
}
