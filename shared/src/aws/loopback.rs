//! A loopback AWS endpoint for unit tests: HTTP/1.1 on 127.0.0.1, connections kept open as AWS
//! endpoints keep them, each request answered from a script; connections and requests counted.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Each request's head and body, in order.
    pub received: Arc<Mutex<Vec<Received>>>,
}

pub(crate) struct Received {
    pub head: Vec<String>,
    pub body: Vec<u8>,
}

impl Received {
    /// The value of header `name` (lowercase), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim())
        })
    }
}

impl Loopback {
    /// Answers the requests with `answers` (status, JSON body) in turn, the last one from then
    /// on.
    pub async fn answering(answers: Vec<(u16, String)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (accepted, counted, kept) = (connections.clone(), requests.clone(), received.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (answers, counted, kept) = (answers.clone(), counted.clone(), kept.clone());
                tokio::spawn(async move {
                    let mut socket = BufReader::new(socket);
                    while let Some(head) = read_head(&mut socket).await {
                        let mut request = Received { head, body: vec![] };
                        let length = request
                            .header("content-length")
                            .map_or(0, |v| v.parse().unwrap());
                        request.body = vec![0; length];
                        socket.read_exact(&mut request.body).await.unwrap();
                        kept.lock().unwrap().push(request);
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
            received,
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

/// A request's head, read up to its blank line: its lines (header names lowercase), or `None`
/// once the client closed the connection.
async fn read_head<R: AsyncBufReadExt + Unpin>(socket: &mut R) -> Option<Vec<String>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if socket.read_line(&mut line).await.unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(head);
        }
        let line = line.trim_end();
        head.push(match line.split_once(':') {
            Some((name, value)) => format!("{}:{value}", name.to_ascii_lowercase()),
            None => line.to_owned(),
        });
    }
}
