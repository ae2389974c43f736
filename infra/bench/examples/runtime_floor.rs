//! The floor under every function's warm invocation on this machine: what the runtime loop and
//! one AWS request cost with no handler work around them. Built in release and run by the
//! Runtime API benchmark in place of a function, by `make bench-floor` (docs/benchmarks.md,
//! "Issue 13, session 15"): the binary is copied into a directory as `inbound-sms`, with two
//! files beside it, `requests` (AWS requests per invocation; 0: the runtime loop alone) and
//! `sleep_ms`, and the benchmark is pointed at it (`BENCH_FUNCTIONS_DIR`).
//!
//! Each invocation goes through what the functions share, `parley::apigw::run` on a
//! current-thread tokio runtime, and sends `requests` DynamoDB GetItems of a key no item has on
//! the reqwest client the functions give the AWS SDK (`parley::aws::http`, kept-alive
//! connections), then answers 200. The requests are not signed (the emulator does not check
//! signatures; the region is in the credential scope it reads). No logging, no parsing of what
//! the event carries. After the requests, a sleep of `sleep_ms` (default 0): the wait an answer
//! from AWS costs, without the request.

use http::{Response, StatusCode};
use lambda_http::Body;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let requests = knob("requests")?.unwrap_or(1);
    let sleep = std::time::Duration::from_millis(knob("sleep_ms")?.unwrap_or(0));
    let endpoint = std::env::var("AWS_ENDPOINT_URL")?;
    let region = std::env::var("AWS_REGION")?;
    let table = std::env::var("TABLE_NAME")?;
    let http = parley::aws::http()?;
    let body =
        format!(r#"{{"TableName":"{table}","Key":{{"pk":{{"S":"FLOOR"}},"sk":{{"S":"FLOOR"}}}}}}"#);
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=test/20261201/{region}/dynamodb/aws4_request, \
         SignedHeaders=host, Signature=0"
    );
    parley::apigw::run(|_request| {
        let (http, endpoint, body, authorization) = (&http, &endpoint, &body, &authorization);
        async move {
            for _ in 0..requests {
                let answer = http
                    .post(endpoint)
                    .header("content-type", "application/x-amz-json-1.0")
                    .header("x-amz-target", "DynamoDB_20120810.GetItem")
                    .header("authorization", authorization)
                    .body(body.clone())
                    .send()
                    .await;
                if let Ok(answer) = answer {
                    let _ = answer.bytes().await;
                }
            }
            if !sleep.is_zero() {
                tokio::time::sleep(sleep).await;
            }
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/plain")
                .body(Body::from("ok"))
                .expect("a fixed response")
        }
    })
    .await
}

/// A number in the file `name` beside the executable, if there is one.
fn knob(name: &str) -> Result<Option<u64>, std::io::Error> {
    let path = std::env::current_exe()?.with_file_name(name);
    Ok(std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse().ok()))
}
