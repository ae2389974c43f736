//! A loopback AWS endpoint for unit tests: HTTP/1.1 on 127.0.0.1, connections kept open as AWS
//! endpoints keep them, each request answered from a script; connections and requests counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_types::region::Region;
use aws_types::sdk_config::SharedCredentialsProvider;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::SdkConfig;

pub(crate) struct Loopback {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
}

impl Loopback {
    /// Answers the requests with `answers` (status, JSON body) in turn, the last one from then
    /// on.
    pub async fn answering(answers: Vec<(u16, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (accepted, counted) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (answers, counted) = (answers.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut socket = BufReader::new(socket);
                    while let Some(length) = read_head(&mut socket).await {
                        let mut body = vec![0; length];
                        socket.read_exact(&mut body).await.unwrap();
                        let n = counted.fetch_add(1, Ordering::SeqCst);
                        let (status, answer) = &answers[n.min(answers.len() - 1)];
                        let response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\n\
                             x-amzn-requestid: r-{n}\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                        socket
                            .get_mut()
                            .write_all(response.as_bytes())
                            .await
                            .unwrap();
                    }
                });
            }
        });
        Self {
            url,
            connections,
            requests,
        }
    }

    /// The functions' SDK configuration pointed here.
    pub fn sdk(&self) -> SdkConfig {
        sdk_config(&self.url)
    }
}

/// The functions' SDK configuration (`aws::builder`) with `endpoint`, a region and static
/// credentials.
pub(crate) fn sdk_config(endpoint: &str) -> SdkConfig {
    super::builder()
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "test",
        )))
        .build()
}

/// A request's head, read up to its blank line: its `content-length` (0 without one), or
/// `None` once the client closed the connection.
async fn read_head<R: AsyncBufReadExt + Unpin>(socket: &mut R) -> Option<usize> {
    let mut length = 0;
    loop {
        let mut line = String::new();
        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            return Some(length);
        }
    }
}
