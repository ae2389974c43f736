//! Secrets that follow a rotation on a warm instance: the cache's time to live, the background
//! re-read, and a send worker whose Twilio token is rotated under it. Each test has its own
//! secret, table, queue and Twilio sandbox (so rotating a token disturbs nobody else).

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use parley::handlers::send_worker::{SendWorker, WorkerConfig};
use parley::pending::Policy;
use parley::phone::Address;
use parley::pipeline::PipelineState;
use parley::secrets::SecretStore;
use parley::store::{keys, CreateOutcome, Message, NewOutbound, Store};
use parley::twilio::client::{Sender, TwilioClient};
use parley_e2e::*;
use serde_json::{json, Value};

async fn secret_store(stack: &Stack, token: &str, ttl: Duration) -> (String, Arc<SecretStore>) {
    let id = format!("test/credentials/{}", ulid::Ulid::new());
    stack.put_secret(&id, token, None).await;
    let client = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let store = SecretStore::load_with_ttl(client, id.clone(), ttl)
        .await
        .expect("load secret");
    (id, Arc::new(store))
}

#[tokio::test]
async fn a_cached_secret_is_not_trusted_past_its_ttl() {
    let stack = stack().await;
    let (id, secrets) = secret_store(&stack, "token-one", Duration::from_secs(1)).await;
    stack.put_secret(&id, "token-two", None).await;

    assert_eq!(
        secrets.fresh().await.twilio_auth_token,
        "token-one",
        "cached"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        secrets.fresh().await.twilio_auth_token,
        "token-two",
        "past the TTL the request waits for the new value"
    );
}

#[tokio::test]
async fn a_value_near_its_ttl_is_re_read_in_the_background_without_blocking() {
    let stack = stack().await;
    let (id, secrets) = secret_store(&stack, "token-one", Duration::from_secs(2)).await;
    stack.put_secret(&id, "token-two", None).await;

    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(
        secrets.fresh().await.twilio_auth_token,
        "token-one",
        "at 80 % of the TTL the cached value is still answered at once"
    );
    eventually(5, "the background re-read", || async {
        (secrets.current().twilio_auth_token == "token-two").then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_keeps_the_cached_value() {
    let stack = stack().await;
    let (id, secrets) = secret_store(&stack, "token-one", Duration::from_secs(1)).await;
    let client = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    client
        .put_secret_value()
        .secret_id(&id)
        .secret_string("{not json")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(secrets.fresh().await.twilio_auth_token, "token-one");
}

/// A worker with its own sandbox, secret, table and queue.
struct Rig {
    stack: Stack,
    sandbox: twilio_sandbox::RunningSandbox,
    secret_id: String,
    secrets: Arc<SecretStore>,
    store: Store,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    worker: SendWorker,
}

async fn rig(label: &str) -> Rig {
    let stack = stack().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox = twilio_sandbox::spawn(
        listener,
        twilio_sandbox::SandboxConfig::new(stack.account_sid.clone(), "token-one"),
    )
    .await
    .unwrap();
    // A TTL no test outlives: what is re-read here, Twilio's 401 made us re-read.
    let (secret_id, secrets) = secret_store(&stack, "token-one", Duration::from_secs(3600)).await;
    let store = stack.own_table(label).await;
    let sqs = aws_sdk_sqs::Client::new(&stack.sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(format!("test-{label}-{}", ulid::Ulid::new()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let twilio = TwilioClient::new(
        &sandbox.url(),
        Sender::Number(TWILIO_NUMBER.into()),
        Duration::from_secs(2),
    )
    .unwrap();
    let config = WorkerConfig {
        status_callback_url: "http://127.0.0.1:9/webhook/twilio/status".into(),
        max_attempts: 2,
        retry_base: Duration::from_secs(1),
        retry_cap: Duration::from_secs(2),
        claim_lease: Duration::from_secs(60),
        rate_per_second: 0.0,
    };
    let worker = SendWorker::new(
        store.clone(),
        sqs.clone(),
        queue_url.clone(),
        twilio,
        secrets.clone(),
        config,
    )
    .with_policy(Arc::new(Policy::always_open()));
    Rig {
        stack,
        sandbox,
        secret_id,
        secrets,
        store,
        sqs,
        queue_url,
        worker,
    }
}

impl Rig {
    /// Twilio switches to `token` (the old one stops working at once).
    async fn rotate_at_twilio(&self, token: &str) {
        let resp = self
            .stack
            .http
            .post(format!("{}/_sandbox/auth-token", self.sandbox.url()))
            .json(&json!({ "auth_token": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }

    /// A queued message written as the API would, and its job's body.
    async fn queued(&self, text: &str) -> (Address, String, String) {
        let address = Address::parse(&unique_phone()).unwrap();
        let id = ulid::Ulid::new().to_string();
        let outcome = self
            .store
            .create_outbound(&NewOutbound::queued(
                id.clone(),
                &address,
                &unique_body(text),
                parley::time::Timestamp::now(),
            ))
            .await
            .unwrap();
        assert!(matches!(outcome, CreateOutcome::Created));
        let job = json!({
            "message_id": id,
            "pk": keys::conversation_pk(address.channel, &address.e164),
            "sk": keys::message_sk(&id),
        })
        .to_string();
        (address, id, job)
    }

    async fn message(&self, address: &Address, id: &str) -> Message {
        self.store
            .message(
                &keys::conversation_pk(address.channel, &address.e164),
                &keys::message_sk(id),
            )
            .await
            .unwrap()
            .expect("stored")
    }

    async fn run(&self, job: &str) -> usize {
        let record = json!({"messageId": "m-0", "receiptHandle": "r-0", "body": job,
            "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs"});
        let event: SqsEvent = serde_json::from_value(json!({ "Records": [record] })).unwrap();
        self.worker.handle(event).await.batch_item_failures.len()
    }

    /// The jobs on this rig's queue (waiting out any delay), removed from it.
    async fn take_jobs(&self, wait: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut jobs = Vec::new();
        while jobs.is_empty() && tokio::time::Instant::now() < deadline {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in out.messages.unwrap_or_default() {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(m.receipt_handle.unwrap())
                    .send()
                    .await
                    .unwrap();
                jobs.push(m.body.unwrap());
            }
        }
        jobs
    }

    async fn accepted_at_twilio(&self, to: &Address) -> Vec<Value> {
        let resp = self
            .stack
            .http
            .get(format!("{}/_sandbox/messages", self.sandbox.url()))
            .query(&[("to", to.e164.as_str())])
            .send()
            .await
            .unwrap();
        let json: Value = resp.json().await.unwrap();
        json["messages"].as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test]
async fn a_token_rotated_under_a_warm_worker_is_picked_up_on_twilios_401_and_the_send_succeeds() {
    let rig = rig("rotation").await;
    let (to, id, job) = rig.queued("Your repair is booked for Tuesday").await;

    // Twilio promotes the new token; the operator stores it. The warm worker still holds the old.
    rig.rotate_at_twilio("token-two").await;
    rig.stack
        .put_secret(&rig.secret_id, "token-two", Some("token-one"))
        .await;
    assert_eq!(rig.secrets.current().twilio_auth_token, "token-one");

    assert_eq!(rig.run(&job).await, 0, "handled, nothing retried");
    let message = rig.message(&to, &id).await;
    assert_eq!(message.status, PipelineState::Submitted);
    assert_eq!(rig.accepted_at_twilio(&to).await.len(), 1);
    assert_eq!(rig.secrets.current().twilio_auth_token, "token-two");
}

#[tokio::test]
async fn while_twilio_refuses_every_token_messages_wait_unfailed_and_go_once_it_is_fixed() {
    let rig = rig("storm").await;
    let (to, id, job) = rig.queued("Rent reminder").await;

    // Twilio has a token the secret does not: every call is a 401, even after re-reading.
    rig.rotate_at_twilio("token-three").await;
    assert_eq!(
        rig.run(&job).await,
        0,
        "given back as a fresh job, not retried toward the DLQ"
    );
    let waiting = rig.message(&to, &id).await;
    assert_eq!(
        waiting.status,
        PipelineState::Queued,
        "never failed for our credentials"
    );
    assert!(rig.accepted_at_twilio(&to).await.is_empty());

    // Longer than max_attempts (2) would allow if a 401 counted as a delivery attempt.
    for round in 0..2 {
        let jobs = rig.take_jobs(Duration::from_secs(30)).await;
        assert_eq!(jobs.len(), 1, "round {round}: one requeued job");
        assert_eq!(rig.run(&jobs[0]).await, 0);
        assert_eq!(rig.message(&to, &id).await.status, PipelineState::Queued);
    }

    // The operator stores the right token: the next try sends it, once.
    rig.stack
        .put_secret(&rig.secret_id, "token-three", None)
        .await;
    // The secret is re-read at most once per few seconds: the worker may need a few rounds.
    let mut sent = false;
    for _ in 0..6 {
        let jobs = rig.take_jobs(Duration::from_secs(30)).await;
        assert_eq!(jobs.len(), 1, "one job at a time");
        assert_eq!(rig.run(&jobs[0]).await, 0);
        if rig.message(&to, &id).await.status == PipelineState::Submitted {
            sent = true;
            break;
        }
    }
    assert!(sent, "sent once the secret is right");
    assert_eq!(rig.accepted_at_twilio(&to).await.len(), 1, "exactly once");
}

#[tokio::test]
async fn a_function_given_several_secrets_reads_them_merged() {
    let stack = stack().await;
    let client = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let twilio = format!("test/credentials/twilio-{}", ulid::Ulid::new());
    let log = format!("test/credentials/log-{}", ulid::Ulid::new());
    let twilio_value =
        json!({"twilio_account_sid": stack.account_sid, "twilio_auth_token": "token-one"});
    parley_local::bootstrap::put_secret(&client, &twilio, &twilio_value.to_string())
        .await
        .unwrap();
    parley_local::bootstrap::put_secret(&client, &log, r#"{"log_hmac_key": "log-key"}"#)
        .await
        .unwrap();

    let merged = SecretStore::load(client.clone(), format!("{log}, {twilio}"))
        .await
        .unwrap()
        .current();
    assert_eq!(merged.twilio_auth_token, "token-one");
    assert_eq!(merged.log_hmac_key, "log-key");
    assert!(merged.api_keys.is_empty(), "not given the API keys");

    // Without the Twilio secret there is no account: Twilio calls count as refused
    // credentials (the message waits), never as a message's fault.
    let log_only = SecretStore::load(client, log).await.unwrap().current();
    assert!(log_only.twilio_account_sid.is_none());
    let twilio_client = TwilioClient::new(
        "http://127.0.0.1:9",
        Sender::Number(TWILIO_NUMBER.into()),
        Duration::from_secs(1),
    )
    .unwrap();
    let sid = parley::twilio::MessageSid::parse("SM00000000000000000000000000000000").unwrap();
    let refused = twilio_client.fetch(&log_only, &sid).await.unwrap_err();
    assert_eq!(
        refused.failure(),
        parley::twilio::client::Failure::Unauthorized
    );
}

#[tokio::test]
async fn the_sending_functions_may_use_a_twilio_api_key_instead_of_the_auth_token() {
    let rig = rig("api-key").await;
    let key_sid = format!("SK{:032x}", ulid::Ulid::new().0);
    let resp = rig
        .stack
        .http
        .post(format!("{}/_sandbox/api-keys", rig.sandbox.url()))
        .json(&json!({"sid": key_sid, "secret": "key-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // The REST secret holds the account and the API key, not the auth token.
    let value = json!({
        "twilio_account_sid": rig.stack.account_sid,
        "twilio_api_key_sid": key_sid,
        "twilio_api_key_secret": "key-secret",
        "log_hmac_key": "test-pseudonym-key",
    });
    parley_local::bootstrap::put_secret(
        &aws_sdk_secretsmanager::Client::new(&rig.stack.sdk),
        &rig.secret_id,
        &value.to_string(),
    )
    .await
    .unwrap();
    rig.secrets.allow_refresh_now().await;

    let (to, id, job) = rig.queued("Your inspection is on Friday").await;
    assert_eq!(rig.run(&job).await, 0);
    assert_eq!(rig.message(&to, &id).await.status, PipelineState::Submitted);
    assert!(
        rig.secrets.current().twilio_auth_token.is_empty(),
        "no auth token held"
    );
    assert_eq!(rig.accepted_at_twilio(&to).await.len(), 1);
}
