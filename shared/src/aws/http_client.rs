//! The AWS SDK's HTTP client: `parley`'s reqwest (HTTP/1.1, rustls on ring, one connection
//! pool), so a function links one HTTP stack and one TLS stack, shared with the Twilio and
//! Monitor clients, instead of a second one (hyper with HTTP/2, rustls on aws-lc-rs) for AWS.
//!
//! The SDK's JSON protocols (DynamoDB, SQS, KMS, Secrets Manager, EventBridge, Lambda) send and
//! receive whole bodies, so requests and responses are buffered; a streaming request body
//! (S3-style uploads, which no function makes) is refused as a user error.

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// One connector for every client and every request: the SDK asks for it on each attempt.
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    connector: SharedHttpConnector,
}

impl ReqwestClient {
    /// The SDK's client on `http`, a client [`http`] built (shared with `store::direct`, so a
    /// warm function keeps one pool of connections to AWS).
    pub fn on(http: Result<reqwest::Client, String>) -> SharedHttpClient {
        let connector = match http {
            Ok(http) => SharedHttpConnector::new(Connector { http }),
            // Only a TLS set-up failure (no usable root certificate store) gets here: every
            // request then fails with it, as a dispatch failure the function reports.
            Err(e) => SharedHttpConnector::new(Unavailable(e)),
        };
        SharedHttpClient::new(Self { connector })
    }
}

/// A reqwest client for AWS requests; the error says why TLS could not be set up.
/// `connect_timeout` is fixed here, for every request on it: reqwest sets it per client, not
/// per request. The attempt and operation timeouts bound the rest.
pub fn http(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    crate::tls::client_builder()
        .connect_timeout(connect_timeout)
        // The SDK reads a redirect as the service's answer; following it would re-send a
        // signed request somewhere else.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

impl HttpClient for ReqwestClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector.clone()
    }
}

#[derive(Debug)]
struct Connector {
    http: reqwest::Client,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let http = self.http.clone();
        HttpConnectorFuture::new(async move { send(&http, request).await })
    }
}

async fn send(
    http: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    let Some(bytes) = body.bytes() else {
        return Err(ConnectorError::user(
            "a streaming request body: this client sends whole bodies only".into(),
        ));
    };
    let body = reqwest::Body::from(bytes.to_vec());
    let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|e| ConnectorError::user(e.into()))?;
    let mut response = http.execute(request).await.map_err(dispatch_failure)?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    let body = response.bytes().await.map_err(dispatch_failure)?;
    let mut answer = http::Response::new(SdkBody::from(body));
    *answer.status_mut() = status;
    *answer.headers_mut() = headers;
    HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
}

/// Timeouts and I/O failures (refused, reset, a pooled connection the server closed) are
/// transient for the SDK's retry strategy; a request reqwest cannot build is the caller's.
fn dispatch_failure(e: reqwest::Error) -> ConnectorError {
    if e.is_timeout() {
        ConnectorError::timeout(e.into())
    } else if e.is_builder() {
        ConnectorError::user(e.into())
    } else if e.is_connect() {
        ConnectorError::io(e.into()).never_connected()
    } else {
        ConnectorError::io(e.into())
    }
}

/// The connector when the HTTP client could not be built: every request fails with why.
#[derive(Debug)]
struct Unavailable(String);

impl HttpConnector for Unavailable {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let why = self.0.clone();
        HttpConnectorFuture::ready(Err(ConnectorError::other(
            format!("no HTTP client: {why}").into(),
            None,
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::net::TcpListener;

    use crate::aws::loopback::{sdk_config, Loopback};

    fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&sdk_config(endpoint))
    }

    #[tokio::test]
    async fn the_sdk_gets_its_answers_through_reqwest_on_one_kept_alive_connection() {
        let server = Loopback::answering(vec![(200, r#"{"TableNames":["a","b"]}"#.into())]).await;
        let dynamodb = client(&server.url);
        for _ in 0..3 {
            let tables = dynamodb.list_tables().send().await.unwrap();
            assert_eq!(tables.table_names(), ["a", "b"]);
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_dispatch_failure_not_an_answer() {
        // A port nothing listens on: bound, then released.
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", free.local_addr().unwrap());
        drop(free);
        let sdk = crate::aws::probe(&sdk_config(&url));
        let error = aws_sdk_dynamodb::Client::new(&sdk)
            .list_tables()
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                aws_sdk_dynamodb::error::SdkError::DispatchFailure(ref f) if f.is_io()
            ),
            "{error:?}"
        );
    }
}
