//! The console's budget of store requests: every page reads at most three store items or
//! queries (issue 12), counted at the DynamoDB client of a console handler served in this
//! process over the stack's table, with the events API Gateway would send.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_smithy_runtime_api::box_error::BoxError;
use parley_console::ConsoleHandler;
use parley_e2e::*;
use reqwest::header::HeaderMap;
use serde_json::json;

/// Every DynamoDB operation the client starts (retries not counted twice).
#[derive(Debug, Default, Clone)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "Calls"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        self.0.lock().unwrap().push(operation);
        Ok(())
    }
}

struct Console {
    handler: ConsoleHandler,
    cookie: String,
    requests: AtomicUsize,
}

impl Console {
    async fn call(&self, method: &str, path: &str, body: &str) -> (u16, HeaderMap, String) {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut headers = HeaderMap::new();
        headers.insert("host", "127.0.0.1".parse().unwrap());
        headers.insert("cookie", self.cookie.parse().unwrap());
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("budget-{n}");
        let event = parley_local::apigw::event(&parley_local::apigw::Incoming {
            method,
            path,
            raw_query: query,
            headers: &headers,
            body: body.as_bytes(),
            route_key: "$default",
            path_parameters: &[],
            source_ip: "127.0.0.1",
            request_id: &request_id,
        });
        let req = parley_local::apigw::request(&event, &request_id).unwrap();
        let (parts, body) = parley_local::apigw::response_parts(self.handler.handle(req).await);
        (
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8(body).unwrap(),
        )
    }
}

#[tokio::test]
async fn every_console_page_reads_at_most_three_store_items_or_queries() {
    let stack = stack().await;
    let calls = Calls::default();
    let store = stack.store_with(calls.clone()).await;
    let queue = parley::queue::JobQueue::new(
        aws_sdk_sqs::Client::new(&stack.sdk),
        stack.queue_url("SendQueue").await,
    );
    let policy = Arc::new(parley::pending::Policy::from_env().unwrap());
    let send = parley::send::SendService::new(store.clone(), queue, policy);
    let secrets = parley::secrets::SecretStore::load(
        aws_sdk_secretsmanager::Client::new(&stack.sdk),
        std::env::var("SECRET_ID").unwrap(),
    )
    .await
    .unwrap();
    let mut console = Console {
        handler: ConsoleHandler::new(store, Arc::new(secrets), send),
        cookie: String::new(),
        requests: AtomicUsize::new(0),
    };
    let form = format!(
        "api_key={}",
        parley::twilio::form::percent_encode(&stack.api_key)
    );
    let (status, headers, _) = console.call("POST", "/console/login", &form).await;
    assert_eq!(status, 303);
    console.cookie = headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // A conversation with an unread text, so its thread page also writes the read mark.
    let phone = unique_phone();
    record_sensitive("phone", &phone);
    let text = unique_body("Is the parking space still free?");
    assert_eq!(
        stack
            .post_inbound(&InboundForm::new(&stack, &phone, &text))
            .await
            .status,
        200
    );
    let search = format!(
        "/console?q={}",
        parley::twilio::form::percent_encode(&spaced(&phone))
    );
    let inbox = eventually(20, "the conversation unread in the inbox", || {
        let console = &console;
        let search = search.clone();
        async move {
            let (_, _, html) = console.call("GET", &search, "").await;
            html.contains("<strong>1</strong>").then_some(html)
        }
    })
    .await;
    let start = inbox.find("href=\"/console/conversations/").unwrap() + 6;
    let thread = inbox[start..].split('"').next().unwrap().to_owned();
    let rule_id = stack
        .http
        .post(format!("{}/rules", stack.gateway))
        .bearer_auth(&stack.api_key)
        .json(&json!({
            "name": "budget",
            "match": {"source": ["test.budget"], "detail-type": ["x"]},
            "recipient": {"phone": "$.detail.phone"},
            "template": {"default": "Hi"},
        }))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["rule_id"]
        .as_str()
        .unwrap()
        .to_owned();

    calls.take();
    let mut budget = Vec::new();
    for path in [
        "/console".to_owned(),
        search.clone(),
        thread.clone(),
        "/console/queue".to_owned(),
        "/console/queue?status=failed".to_owned(),
        "/console/dashboard".to_owned(),
        "/console/dashboard?range=30d".to_owned(),
        "/console/rules".to_owned(),
        format!("/console/rules/{rule_id}"),
    ] {
        let (status, _, html) = console.call("GET", &path, "").await;
        assert_eq!(status, 200, "{path}: {html}");
        let made = calls.take();
        // Session checks read the key through the access cache, filled by the sign-in.
        assert!(
            made.len() <= 3,
            "{path} made {} store requests: {made:?}",
            made.len()
        );
        budget.push((path, made));
    }
    let (_, thread_calls) = &budget[2];
    assert_eq!(
        thread_calls.len(),
        3,
        "an unread thread: its conversation, its messages, the read mark: {thread_calls:?}"
    );
    let (_, again) = {
        let (status, _, _) = console.call("GET", &thread, "").await;
        assert_eq!(status, 200);
        ((), calls.take())
    };
    assert_eq!(again.len(), 2, "read: no mark to write: {again:?}");
}
