//! The operator console over the gateway, as a browser without script would use it: sign in,
//! find a thread by a number written with spaces and dashes, reply and watch it reach
//! "delivered", schedule a message and cancel it; sessions, CSRF and masking.

use std::time::Duration;

use parley::twilio::form::percent_encode;
use parley_e2e::*;
use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::{json, Value};

/// A browser: no redirects followed (the tests look at them), one session cookie.
struct Browser {
    http: reqwest::Client,
    gateway: String,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The value of the first `name="…" value="…"` hidden input.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.html))
            + marker.len();
        self.html[start..].split('"').next().unwrap().to_owned()
    }

    /// The first link whose target starts with `prefix`.
    fn link(&self, prefix: &str) -> String {
        let marker = format!("href=\"{prefix}");
        let start = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no link to {prefix} in {}", self.html))
            + 6;
        self.html[start..].split('"').next().unwrap().to_owned()
    }
}

impl Browser {
    /// A second tab of the same browser (same session), for polling inside `eventually`.
    fn tab(&self) -> Self {
        Self {
            http: self.http.clone(),
            gateway: self.gateway.clone(),
            cookie: self.cookie.clone(),
        }
    }

    fn new(stack: &Stack) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            gateway: stack.gateway.clone(),
            cookie: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header(COOKIE, c),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        if let Some(set) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        Page {
            status,
            headers,
            html: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.gateway));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.gateway)).form(form);
        self.send(req).await
    }

    async fn sign_in(&mut self, key: &str) -> Page {
        self.post("/console/login", &[("api_key", key)]).await
    }
}

/// The thread's link, found in the inbox by the number written with spaces and dashes.
async fn thread_of(browser: &Browser, phone: &str) -> String {
    let path = format!("/console?q={}", percent_encode(&spaced(phone)));
    let inbox = eventually(20, "the thread in the console inbox", || {
        let (mut tab, path) = (browser.tab(), path.clone());
        async move {
            let page = tab.get(&path).await;
            assert_eq!(page.status, 200, "{}", page.html);
            page.html
                .contains("/console/conversations/")
                .then_some(page)
        }
    })
    .await;
    inbox.link("/console/conversations/")
}

/// The `action` of the first form posting to a path that starts with `prefix`.
fn action(page: &Page, prefix: &str) -> String {
    let marker = format!("action=\"{prefix}");
    let start = page
        .html
        .find(&marker)
        .unwrap_or_else(|| panic!("no form to {prefix}"))
        + 8;
    page.html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn an_operator_signs_in_reads_a_thread_replies_and_cancels_a_scheduled_message() {
    let stack = stack().await;
    let mut browser = Browser::new(&stack);

    let first = browser.get("/console").await;
    assert_eq!(first.status, 303);
    assert_eq!(first.location(), "/console/login");
    let login = browser.get("/console/login").await;
    assert_eq!(login.status, 200);
    assert!(
        login.html.contains("<label for=\"api_key\""),
        "the key field is labelled"
    );

    let refused = browser.sign_in("prly_not_a_key").await;
    assert_eq!(refused.status, 401);
    assert!(browser.cookie.is_none());
    let signed_in = browser.sign_in(&stack.api_key).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.html);
    let set_cookie = signed_in.headers.get(SET_COOKIE).unwrap().to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP on localhost: {set_cookie}"
    );
    assert!(
        !set_cookie.contains(&stack.api_key),
        "the cookie never holds the key"
    );

    // A tenant texts in; the operator finds the thread by the number as written on a form.
    let phone = unique_phone();
    record_sensitive("phone", &phone);
    let hello = unique_body("Hello, is the office open on Saturday?");
    assert_eq!(
        stack
            .post_inbound(&InboundForm::new(&stack, &phone, &hello))
            .await
            .status,
        200
    );
    let thread = thread_of(&browser, &phone).await;
    assert!(
        !thread.contains(&phone[2..]),
        "URLs never carry the number: {thread}"
    );
    let page = browser.get(&thread).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(page.html.contains(&hello));
    assert!(page
        .html
        .contains(&format!("•••-•••-{}", &phone[phone.len() - 4..])));
    assert!(!page.html.contains(&phone), "masked by default");
    for (header, value) in [("x-frame-options", "DENY"), ("cache-control", "no-store")] {
        assert_eq!(page.headers.get(header).unwrap(), value);
    }
    assert!(page
        .headers
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let unread = stack
        .store
        .conversation(
            parley::phone::Channel::Sms,
            &parley::phone::E164::parse(&phone).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unread.unread_count, 0, "reading the thread marks it read");

    // A reply without the session's CSRF token is refused and sends nothing.
    let forged = browser
        .post(
            &format!("{thread}/reply"),
            &[("body", "forged"), ("csrf", "x")],
        )
        .await;
    assert_eq!(forged.status, 403);
    let csrf = page.hidden("csrf");
    let idempotency_key = page.hidden("idempotency_key");
    let reply = unique_body("Yes, 9 to 1.");
    let form = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", idempotency_key.as_str()),
        ("body", reply.as_str()),
        ("send_at", ""),
    ];
    let sent = browser.post(&format!("{thread}/reply"), &form).await;
    assert_eq!(sent.status, 303, "{}", sent.html);
    assert!(sent.location().ends_with("?notice=sent"));
    // The same form submitted twice (a double click) sends once.
    assert_eq!(
        browser.post(&format!("{thread}/reply"), &form).await.status,
        303
    );
    eventually(30, "the reply delivered, as the console shows it", || {
        let (mut tab, thread, reply) = (browser.tab(), thread.clone(), reply.clone());
        async move {
            let page = tab.get(&thread).await;
            (page.html.contains(&reply) && page.html.contains("data-state=\"delivered\""))
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        stack.sandbox_messages_with(&phone, &reply).await.len(),
        1,
        "sent once"
    );

    // Tomorrow at 09:00 in the recipient's zone, then canceled.
    let tomorrow = parley::time::Timestamp::now()
        .plus(Duration::from_secs(24 * 3600))
        .to_string();
    let local = format!("{}T09:00", &tomorrow[..10]);
    let page = browser.get(&thread).await;
    let later = unique_body("Reminder: the office opens at 9.");
    let idempotency_key = page.hidden("idempotency_key");
    let form = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", idempotency_key.as_str()),
        ("body", later.as_str()),
        ("send_at", local.as_str()),
    ];
    let scheduled = browser.post(&format!("{thread}/reply"), &form).await;
    assert_eq!(scheduled.status, 303, "{}", scheduled.html);
    assert!(
        scheduled.location().ends_with("?notice=scheduled"),
        "{}",
        scheduled.location()
    );
    let page = browser.get(&thread).await;
    assert!(
        page.html.contains("data-state=\"scheduled\""),
        "{}",
        page.html
    );
    // The queue lists it, due at 09:00 on the recipient's clock.
    let mut path = "/console/queue?status=scheduled".to_owned();
    let mut listed = false;
    for _ in 0..100 {
        let queue = browser.get(&path).await;
        assert_eq!(queue.status, 200, "{}", queue.html);
        assert!(!queue.html.contains(&phone), "masked in the queue too");
        if queue.html.contains(&format!("{} 09:00", &local[..10])) && queue.html.contains(&thread) {
            listed = true;
            break;
        }
        match queue.html.find("href=\"/console/queue?") {
            Some(_) => path = queue.link("/console/queue?").replace("&amp;", "&"),
            None => break,
        }
    }
    assert!(
        listed,
        "the scheduled message is in the queue at its local time"
    );
    let cancel = action(&page, "/console/messages/");
    let canceled = browser
        .post(
            &cancel,
            &[("csrf", csrf.as_str()), ("back", thread.as_str())],
        )
        .await;
    assert_eq!(canceled.status, 303, "{}", canceled.html);
    assert!(canceled.location().starts_with(&thread));
    let page = browser.get(&thread).await;
    assert!(
        page.html.contains("data-state=\"canceled\""),
        "{}",
        page.html
    );
    assert!(stack.sandbox_messages_with(&phone, &later).await.is_empty());

    // Signing out clears the cookie: the next page asks to sign in.
    let out = browser
        .post("/console/logout", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(out.status, 303);
    assert!(browser.cookie.is_none());
    assert_eq!(browser.get("/console").await.location(), "/console/login");
}

#[tokio::test]
async fn a_key_without_read_cannot_sign_in_and_a_revoked_key_has_no_session() {
    let stack = stack().await;
    let create = |scopes: Value| {
        let stack = &stack;
        async move {
            let reply = stack
                .http
                .post(format!("{}/keys", stack.gateway))
                .bearer_auth(&stack.api_key)
                .json(&json!({"name": "console test", "scopes": scopes}))
                .send()
                .await
                .unwrap();
            assert_eq!(reply.status(), 201);
            let json: Value = reply.json().await.unwrap();
            (
                json["key"]["key_id"].as_str().unwrap().to_owned(),
                json["token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (_, send_only) = create(json!(["send"])).await;
    let mut browser = Browser::new(&stack);
    assert_eq!(browser.sign_in(&send_only).await.status, 401);
    assert!(browser.cookie.is_none());

    let (reader_id, reader) = create(json!(["read"])).await;
    assert_eq!(browser.sign_in(&reader).await.status, 303);
    let page = browser.get("/console").await;
    assert_eq!(page.status, 200);
    assert!(!page.html.contains("Reveal number"), "only admins reveal");
    let revoked = stack
        .http
        .delete(format!("{}/keys/{reader_id}", stack.gateway))
        .bearer_auth(&stack.api_key)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    // A session names its key; the key is looked up again (through the same cache as API
    // calls, so a running console refuses it within SECRETS_TTL_SECONDS).
    let client = aws_sdk_secretsmanager::Client::new(&stack.sdk);
    let secret_id = std::env::var("SECRET_ID").unwrap();
    let secrets = std::sync::Arc::new(
        parley::secrets::SecretStore::load(client, secret_id)
            .await
            .unwrap(),
    );
    let access = parley::access::Access::new(stack.store.clone(), secrets);
    assert!(
        access.caller(&reader_id).await.unwrap().is_none(),
        "a revoked key has no caller"
    );
    let (late_id, late) = create(json!(["read"])).await;
    let revoked = stack
        .http
        .delete(format!("{}/keys/{late_id}", stack.gateway))
        .bearer_auth(&stack.api_key)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let mut fresh = Browser::new(&stack);
    assert_eq!(
        fresh.sign_in(&late).await.status,
        401,
        "a revoked key signs no one in"
    );
}

#[tokio::test]
async fn an_admin_reveals_a_number_and_forged_refs_and_cookies_are_refused() {
    let stack = stack().await;
    let mut browser = Browser::new(&stack);
    assert_eq!(browser.sign_in(&stack.api_key).await.status, 303);
    let phone = unique_phone();
    record_sensitive("phone", &phone);
    assert_eq!(
        stack
            .post_inbound(&InboundForm::new(&stack, &phone, "hi"))
            .await
            .status,
        200
    );
    let thread = thread_of(&browser, &phone).await;
    let page = browser.get(&thread).await;
    let csrf = page.hidden("csrf");
    let revealed = browser
        .post(&format!("{thread}/reveal"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(revealed.status, 200);
    assert!(revealed.html.contains(&phone));

    let forged = format!("{}x", thread);
    assert_eq!(browser.get(&forged).await.status, 404);
    assert_eq!(
        browser.get("/console/conversations/not-a-ref").await.status,
        404
    );
    let mut stranger = Browser::new(&stack);
    stranger.cookie = Some("parley_session=eyJrZXlfaWQiOiJ4In0.AAAA".into());
    assert_eq!(stranger.get("/console").await.location(), "/console/login");
    let post = stranger
        .post(&format!("{thread}/reply"), &[("body", "x"), ("csrf", "x")])
        .await;
    assert_eq!(
        post.status, 401,
        "a POST without a session is refused, not redirected"
    );
}

/// The sample event (`events/console.json`, the one `sam local` and the Lambda benchmark
/// send) is the sign-in page, served by the handler as the function's `main` builds it.
#[tokio::test]
async fn the_sample_event_is_the_sign_in_page() {
    let stack = stack().await;
    let queue = parley::queue::JobQueue::new(
        aws_sdk_sqs::Client::new(&stack.sdk),
        stack.queue_url("SendQueue").await,
    );
    let policy = std::sync::Arc::new(parley::pending::Policy::from_env().unwrap());
    let send = parley::send::SendService::new(stack.store.clone(), queue, policy);
    let secrets = parley::secrets::SecretStore::load(
        aws_sdk_secretsmanager::Client::new(&stack.sdk),
        std::env::var("SECRET_ID").unwrap(),
    )
    .await
    .unwrap();
    let handler = parley_console::ConsoleHandler::new(
        stack.store.clone(),
        std::sync::Arc::new(secrets),
        send,
    );
    let req = lambda_http::request::from_str(include_str!("../events/console.json")).unwrap();
    let resp = handler.handle(req).await;
    assert_eq!(resp.status(), 200);
    let lambda_http::Body::Text(html) = resp.body() else {
        panic!("an HTML page");
    };
    assert!(html.contains("name=\"api_key\""));
}

/// The number in the dashboard tile with this id.
fn tile(page: &Page, id: &str) -> String {
    let marker = format!("<dd id=\"{id}\">");
    let start = page
        .html
        .find(&marker)
        .unwrap_or_else(|| panic!("no tile {id}"))
        + marker.len();
    page.html[start..].split('<').next().unwrap().to_owned()
}

/// Spanish texts in the language-mix chart (0 when it has none).
fn spanish(page: &Page) -> u64 {
    page.html
        .split("<title>es: ")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn the_dashboard_counts_todays_traffic_from_the_aggregates() {
    let stack = stack().await;
    let mut browser = Browser::new(&stack);
    assert_eq!(browser.sign_in(&stack.api_key).await.status, 303);
    let before = browser.get("/console/dashboard").await;
    assert_eq!(before.status, 200, "{}", before.html);
    let inbound_before: u64 = tile(&before, "total-inbound").parse().unwrap();
    let spanish_before = spanish(&before);
    assert!(
        tile(&before, "queue-depth").parse::<u64>().is_ok(),
        "the queue's depth comes from SQS"
    );
    for series in [", in: ", ", out: ", ", delivered: ", ", opt-outs: "] {
        assert_eq!(
            before.html.matches(series).count(),
            24,
            "every hour of the day has its {series} column, empty or not"
        );
    }

    let phone = unique_phone();
    record_sensitive("phone", &phone);
    let text = unique_body("Hola, ¿la oficina abre el sábado por la mañana?");
    assert_eq!(
        stack
            .post_inbound(&InboundForm::new(&stack, &phone, &text))
            .await
            .status,
        200
    );
    let after = eventually(30, "the text counted on the dashboard", || {
        let mut tab = browser.tab();
        async move {
            let page = tab.get("/console/dashboard?range=24h").await;
            // Other tests text in too: wait for a Spanish text more than before.
            (spanish(&page) > spanish_before).then_some(page)
        }
    })
    .await;
    assert!(
        after.html.contains("<title>es: "),
        "the language mix has Spanish"
    );
    assert!(after.html.contains("aria-current=\"page\">Dashboard"));
    for range in ["7d", "30d"] {
        let page = browser
            .get(&format!("/console/dashboard?range={range}"))
            .await;
        assert_eq!(page.status, 200);
        let total: u64 = tile(&page, "total-inbound").parse().unwrap();
        assert!(total > inbound_before, "{range} includes today");
    }
    assert_eq!(browser.get("/console/dashboard?range=1y").await.status, 400);
}

#[tokio::test]
async fn an_admin_previews_disables_and_enables_a_rule_and_sees_its_activity() {
    let stack = stack().await;
    let source = format!("test.console.{}", ulid::Ulid::new());
    let spec = json!({
        "name": format!("console overdue {source}"),
        "match": {"source": [source], "detail-type": ["invoice.overdue"]},
        "recipient": {"phone": "$.detail.phone"},
        "template": {"default": "Invoice {{ detail.invoice_id }} is overdue."},
        "dedupe": "invoice-{{ detail.invoice_id }}",
    });
    let created = stack
        .http
        .post(format!("{}/rules", stack.gateway))
        .bearer_auth(&stack.api_key)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let rule_id = created.json::<Value>().await.unwrap()["rule_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let here = format!("/console/rules/{rule_id}");

    let mut browser = Browser::new(&stack);
    assert_eq!(browser.sign_in(&stack.api_key).await.status, 303);
    let list = browser.get("/console/rules").await;
    assert_eq!(list.status, 200, "{}", list.html);
    assert!(list.html.contains(&format!("href=\"{here}\"")));
    let page = browser.get(&here).await;
    assert_eq!(page.status, 200);
    assert!(
        page.html
            .contains("&quot;source&quot;: &quot;test.console."),
        "the sample starts from the rule's pattern: {}",
        page.html
    );
    let csrf = page.hidden("csrf");

    // A preview with a sample: what it would send, to a masked number, and nothing written.
    let phone = unique_phone();
    record_sensitive("phone", &phone);
    let sample = json!({"event": {"source": source, "detail-type": "invoice.overdue",
                                  "detail": {"phone": phone, "invoice_id": "C-1"}}});
    let preview = browser
        .post(
            &format!("{here}/preview"),
            &[("csrf", csrf.as_str()), ("sample", &sample.to_string())],
        )
        .await;
    assert_eq!(preview.status, 200, "{}", preview.html);
    assert!(preview.html.contains("It would send."), "{}", preview.html);
    assert!(preview.html.contains("Invoice C-1 is overdue."));
    assert!(preview
        .html
        .contains(&format!("•••-•••-{}", &phone[phone.len() - 4..])));
    assert_eq!(
        preview.html.matches(&phone).count(),
        1,
        "the recipient is masked; only the sample the admin typed holds the number"
    );
    assert!(stack.sandbox_messages(&phone).await.is_empty());
    let not_json = browser
        .post(
            &format!("{here}/preview"),
            &[("csrf", csrf.as_str()), ("sample", "{not json")],
        )
        .await;
    assert_eq!(not_json.status, 400);
    assert!(not_json.html.contains("The sample is not JSON"));

    // Disabled, then enabled: each a new version, as the API shows.
    let disabled = browser
        .post(&format!("{here}/disable"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(disabled.status, 303, "{}", disabled.html);
    let page = browser.get(disabled.location()).await;
    assert!(page
        .html
        .contains("Disabled: events no longer make messages"));
    assert!(page.html.contains("Enable this rule"));
    let api = stack
        .http
        .get(format!("{}/rules/{rule_id}", stack.gateway))
        .bearer_auth(&stack.api_key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        (api["enabled"].as_bool(), api["version"].as_u64()),
        (Some(false), Some(2))
    );
    let enabled = browser
        .post(&format!("{here}/enable"), &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(enabled.status, 303);
    assert!(browser.get(&here).await.html.contains("Disable this rule"));

    // An event through the API: the rule's activity shows what it did.
    tokio::time::sleep(Duration::from_millis(2100)).await; // the router's rule cache
    let events = stack
        .http
        .post(format!("{}/events", stack.gateway))
        .bearer_auth(&stack.api_key)
        .json(
            &json!({"Entries": [{"Source": source, "DetailType": "invoice.overdue",
                                   "Detail": {"phone": phone, "invoice_id": "C-2"}}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 202);
    eventually(60, "the event in the rule's activity", || {
        let (mut tab, here) = (browser.tab(), here.clone());
        async move {
            let page = tab.get(&here).await;
            page.html
                .contains("invoice.overdue</td><td>scheduled")
                .then_some(())
        }
    })
    .await;

    // A read key neither sees nor changes rules.
    let reader = stack
        .http
        .post(format!("{}/keys", stack.gateway))
        .bearer_auth(&stack.api_key)
        .json(&json!({"name": "console reader", "scopes": ["read"]}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut operator = Browser::new(&stack);
    assert_eq!(
        operator
            .sign_in(reader["token"].as_str().unwrap())
            .await
            .status,
        303
    );
    let inbox = operator.get("/console").await;
    assert!(
        !inbox.html.contains("href=\"/console/rules\""),
        "no Rules in a reader's nav"
    );
    assert_eq!(operator.get(&here).await.status, 403);
    let csrf = inbox.hidden("csrf");
    assert_eq!(
        operator
            .post(&format!("{here}/disable"), &[("csrf", csrf.as_str())])
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn a_failed_message_is_listed_and_re_sent_once_as_a_new_linked_message() {
    let stack = stack().await;
    let phone = unique_phone();
    record_sensitive("phone", &phone);
    // The carrier reports the first message undelivered (the handset is off).
    stack
        .sandbox_control(
            "callbacks",
            json!({"to": phone, "sequence": ["sent", "undelivered"], "error_code": 30003}),
        )
        .await;
    let body = unique_body("Your repair is booked for Tuesday.");
    let sent = stack
        .http
        .post(format!("{}/sms/send", stack.gateway))
        .bearer_auth(&stack.api_key)
        .json(&json!({"to": phone, "body": body}))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let failed_id = sent.json::<Value>().await.unwrap()["message_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut browser = Browser::new(&stack);
    assert_eq!(browser.sign_in(&stack.api_key).await.status, 303);
    let resend_action = format!("/console/messages/{failed_id}/resend");
    let failed = eventually(30, "the message in the failed list", || {
        let (mut tab, action) = (browser.tab(), resend_action.clone());
        async move {
            let page = tab.get("/console/queue?status=failed").await;
            assert_eq!(page.status, 200, "{}", page.html);
            page.html.contains(&action).then_some(page)
        }
    })
    .await;
    assert!(failed
        .html
        .contains("error 30003: the handset is unreachable"));
    assert!(!failed.html.contains(&phone), "masked in the failed list");
    let csrf = failed.hidden("csrf");
    // From now on the carrier delivers.
    stack
        .sandbox_control(
            "callbacks",
            json!({"to": phone, "sequence": ["sent", "delivered"]}),
        )
        .await;
    let form = [
        ("csrf", csrf.as_str()),
        ("back", "/console/queue?status=failed"),
    ];
    let resent = browser.post(&resend_action, &form).await;
    assert_eq!(resent.status, 303, "{}", resent.html);
    assert_eq!(resent.location(), "/console/queue?notice=resent");
    // A second click (or a second operator) re-sends nothing more.
    assert_eq!(browser.post(&resend_action, &form).await.status, 303);

    let old = stack
        .store
        .message_by_id(&failed_id)
        .await
        .unwrap()
        .unwrap();
    let new_id = old.resent_as.clone().expect("linked to its re-send");
    let new = stack.store.message_by_id(&new_id).await.unwrap().unwrap();
    assert_eq!(new.resend_of.as_deref(), Some(failed_id.as_str()));
    assert_eq!(new.to_e164, old.to_e164);
    eventually(30, "the re-send delivered", || {
        let store = stack.store.clone();
        let id = new_id.clone();
        async move {
            let m = store.message_by_id(&id).await.unwrap()?;
            (m.delivery_status == Some(parley::delivery::DeliveryStatus::Delivered)).then_some(())
        }
    })
    .await;
    assert_eq!(
        stack.sandbox_messages_with(&phone, &body).await.len(),
        2,
        "the failed message and one re-send"
    );
    let listed = browser.get("/console/queue?status=failed").await;
    assert!(
        !listed.html.contains(&resend_action),
        "a re-sent message offers no second re-send"
    );
    // Only a failed message can be re-sent.
    let refused = browser
        .post(&format!("/console/messages/{new_id}/resend"), &form)
        .await;
    assert_eq!(refused.status, 400);
}
