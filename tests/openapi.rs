//! The published contract: docs/openapi.json is what the request and response types generate,
//! it names every route template.yaml declares (and nothing else), and the stack serves it,
//! unauthenticated, at `GET /openapi.json`. `UPDATE_OPENAPI=1` rewrites the committed file
//! (or: `cargo run -q -p parley-local -- openapi > docs/openapi.json`).

use std::collections::BTreeSet;

use parley_e2e::*;
use serde_json::Value;

fn committed_path() -> std::path::PathBuf {
    parley_local::env::repo_root().join("docs/openapi.json")
}

#[test]
fn the_committed_document_is_the_one_the_types_generate() {
    let generated = parley::openapi::document();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path(), &generated).expect("docs/openapi.json written");
    }
    let committed = std::fs::read_to_string(committed_path()).expect("docs/openapi.json");
    assert!(
        committed == generated,
        "docs/openapi.json is stale: run `UPDATE_OPENAPI=1 cargo nextest run -p parley-e2e \
         --test openapi` (or `cargo run -q -p parley-local -- openapi > docs/openapi.json`)"
    );
    // What the health function compiles in and serves.
    assert_eq!(parley::handlers::health::OPENAPI_DOCUMENT, committed);
}

#[test]
fn the_document_is_openapi_3_1_with_its_security_schemes_and_error_schema() {
    let doc: Value = serde_json::from_str(&parley::openapi::document()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["twilio_signature"]["type"], "apiKey");
    assert_eq!(schemes["twilio_signature"]["in"], "header");
    assert_eq!(schemes["twilio_signature"]["name"], "X-Twilio-Signature");
    // utoipa names a schema after its type, so two types of one name would be one schema: the
    // health probe's (`Probe`) once was the rule engine's `Check`.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["Probe"]["properties"]["latency_ms"].is_object());
    assert!(schemas["Check"]["oneOf"].is_array());
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(error["required"], serde_json::json!(["code", "message"]));
    // Every 4xx and 5xx of every operation is an ErrorBody (the health probe's 503 aside).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let security = op["security"].to_string();
            if path.starts_with("/webhook/") {
                assert!(security.contains("twilio_signature"), "{method} {path}");
                assert!(op["responses"]["403"].is_object(), "{method} {path}: 403");
            } else if path != "/openapi.json" {
                assert!(security.contains("bearer"), "{method} {path}");
                for status in ["401", "403", "429", "500", "503"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path}: {status}"
                    );
                }
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('2') || (path == "/health" && status == "503") {
                    continue;
                }
                let text = response.to_string();
                assert!(
                    text.contains("#/components/schemas/ErrorBody")
                        || text.contains("#/components/responses/"),
                    "{method} {path} {status}: {text}"
                );
            }
        }
    }
}

#[test]
fn every_route_of_the_template_is_documented_and_nothing_else() {
    let template: BTreeSet<(String, String)> = parley_local::template::Template::load_default()
        .unwrap()
        .http_routes()
        .into_iter()
        .map(|r| (r.method.to_ascii_lowercase(), r.path))
        // The console's routes serve HTML to a browser with a session cookie and CSRF forms
        // (docs/architecture.md, "The operator console"): not a contract to generate a client
        // from. They are listed in one place, and only those are left out.
        .filter(|(method, path)| {
            !parley_console::ROUTES
                .iter()
                .any(|(m, p)| m.eq_ignore_ascii_case(method) && p == path)
        })
        .collect();
    let doc: Value = serde_json::from_str(&parley::openapi::document()).unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    assert_eq!(documented, template);
}

#[tokio::test]
async fn the_stack_serves_the_committed_document_without_a_key() {
    let stack = stack().await;
    let reply = stack.get("/openapi.json", None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    let committed = std::fs::read_to_string(committed_path()).expect("docs/openapi.json");
    assert!(
        reply.body == committed,
        "the served document is the committed one"
    );
}

/// The validator of one component schema (the whole document's components, so references
/// resolve), with formats checked (`date-time`).
fn validator(doc: &Value, schema: &str) -> jsonschema::Validator {
    assert!(
        doc["components"]["schemas"].get(schema).is_some(),
        "no schema {schema}"
    );
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{schema}"),
        "components": doc["components"],
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .expect("a valid draft 2020-12 schema")
}

#[track_caller]
fn assert_matches(doc: &Value, schema: &str, reply: &Reply) {
    let body: Value = serde_json::from_str(&reply.body).expect("a JSON answer");
    let errors: Vec<String> = validator(doc, schema)
        .iter_errors(&body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema}: {body:#}\n{errors:#?}");
}

async fn call(stack: &Stack, method: &str, path: &str) -> Reply {
    let req = stack
        .http
        .request(method.parse().unwrap(), format!("{}{path}", stack.gateway))
        .bearer_auth(&stack.api_key);
    read(req.send().await.expect("gateway reachable")).await
}

/// The answers the contract tests' generated requests cannot reach (they need a conversation,
/// a message id, an erasure) match their documented schemas too; a live message and an erased
/// one each match exactly one branch of `MessageAnswer`.
#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let stack = stack().await;
    let doc: Value = serde_json::from_str(&parley::openapi::document()).unwrap();
    let phone = unique_phone();
    let encoded = phone.replace('+', "%2B");

    let form = InboundForm::new(&stack, &phone, &unique_body("Hola, ya pagué la renta"));
    let reply = stack.post_inbound(&form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type, "text/xml");

    let send_at = parley::time::Timestamp::now()
        .plus(std::time::Duration::from_secs(86_400))
        .to_string();
    let request = serde_json::json!({
        "to": phone, "body": unique_body("Rent is due on Friday."), "send_at": send_at,
        "urgent": true, "workflow_type": "maintenance", "workflow_id": "wo-1",
    });
    let reply = stack.send(&request, None).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_matches(&doc, "Accepted", &reply);
    let message_id = reply.json()["message_id"].as_str().unwrap().to_owned();

    let reply = call(&stack, "GET", &format!("/conversations/{encoded}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_matches(&doc, "ConversationPage", &reply);
    assert_eq!(reply.json()["messages"].as_array().unwrap().len(), 2);

    let live = call(&stack, "GET", &format!("/messages/{message_id}")).await;
    assert_eq!(live.status, 200, "{}", live.body);
    assert_matches(&doc, "MessageAnswer", &live);
    assert_matches(&doc, "MessageDetail", &live);
    let body: Value = serde_json::from_str(&live.body).unwrap();
    assert!(!validator(&doc, "ErasedMessageView").is_valid(&body));

    let reply = call(&stack, "GET", "/queue?status=scheduled&limit=5").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_matches(&doc, "QueuePage", &reply);
    let reply = call(&stack, "POST", &format!("/messages/{message_id}/cancel")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_matches(&doc, "Canceled", &reply);
    for (path, schema) in [
        ("/queue/summary", "QueueSummary"),
        ("/keys", "KeyList"),
        ("/health", "HealthBody"),
        ("/rules", "RuleList"),
    ] {
        let reply = call(&stack, "GET", path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert_matches(&doc, schema, &reply);
    }

    let reply = call(&stack, "DELETE", &format!("/contacts/{encoded}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_matches(&doc, "ContactErased", &reply);
    let erased = call(&stack, "GET", &format!("/messages/{message_id}")).await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    assert_matches(&doc, "MessageAnswer", &erased);
    assert_matches(&doc, "ErasedMessageView", &erased);
    let body: Value = serde_json::from_str(&erased.body).unwrap();
    assert!(!validator(&doc, "MessageDetail").is_valid(&body));

    for (method, path, status) in [
        ("GET", "/messages/not-a-ulid".to_owned(), 400),
        ("GET", format!("/conversations/{encoded}"), 404),
        ("POST", "/sms/send".to_owned(), 400),
    ] {
        let reply = call(&stack, method, &path).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert_matches(&doc, "ErrorBody", &reply);
    }
}
