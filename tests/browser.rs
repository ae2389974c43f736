//! The operator console in headless Chromium, driven as a person would: typing into labelled
//! fields, clicking buttons, reading the page's text. An inbound text arrives; the operator
//! finds its thread by the number written with spaces and dashes, replies (the live counter
//! follows the typing), watches the reply reach "delivered", schedules a message for tomorrow
//! morning, sees it in the thread and the queue, cancels it, reads the dashboard, and signs
//! out. On every page each control has an accessible name and is reached by Tab. Screenshots
//! land in `target/e2e/screenshots/`.
//!
//! Needs Chromium and chromedriver (README, "Browser tests"); missing, the tests fail saying so.

use parley_e2e::webdriver::{keys, screenshot_path, Browser};
use parley_e2e::*;
use serde_json::json;

/// A page's controls without an accessible name: no `<label for>` (or wrapping label), no
/// `aria-label`/`aria-labelledby`, no text. Returns each offender's opening markup.
const NAMELESS_CONTROLS: &str = r#"
const controls = document.querySelectorAll('input:not([type=hidden]), select, textarea, button');
function name(el) {
  const aria = (el.getAttribute('aria-label') || '').trim();
  if (aria) return aria;
  const by = (el.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean)
    .map(id => (document.getElementById(id) || {}).textContent || '').join(' ').trim();
  if (by) return by;
  const labels = Array.from(el.labels || []).map(l => l.textContent).join(' ').trim();
  if (labels) return labels;
  if (el.tagName === 'BUTTON') return el.textContent.trim();
  if (['submit', 'button', 'reset'].includes(el.type)) return (el.value || '').trim();
  return '';
}
return Array.from(controls).filter(el => !name(el)).map(el => el.outerHTML.split('>')[0] + '>');
"#;

/// Numbers every link and control in document order, starts recording which of them take the
/// focus, and clears the focus. Returns how many there are.
const WATCH_FOCUS: &str = r#"
const controls = Array.from(document.querySelectorAll(
  'a[href], input:not([type=hidden]), select, textarea, button, summary')).filter(el => !el.disabled);
controls.forEach((el, i) => el.setAttribute('data-tab-order', String(i)));
window.parleyFocused = [];
document.addEventListener('focusin', e => {
  const i = e.target.getAttribute && e.target.getAttribute('data-tab-order');
  if (i !== null) window.parleyFocused.push(Number(i));
});
if (document.activeElement) document.activeElement.blur();
return controls.length;
"#;

/// The controls that never took the focus, as opening markup.
const NEVER_FOCUSED: &str = r#"
const seen = new Set(window.parleyFocused);
return Array.from(document.querySelectorAll('[data-tab-order]'))
  .filter(el => !seen.has(Number(el.getAttribute('data-tab-order'))))
  .map(el => el.outerHTML.split('>')[0] + '>');
"#;

/// The state shown on the outbound message whose text is `arguments[0]`, or null.
const STATE_OF: &str = r#"
const item = Array.from(document.querySelectorAll('ol.thread li.out'))
  .find(li => li.querySelector('.body').textContent === arguments[0]);
const state = item && item.querySelector('.state');
return state ? state.textContent.trim() : null;
"#;

/// Every control on the page has an accessible name, and Tab alone reaches each of them (and
/// each link).
async fn assert_accessible(browser: &Browser, page: &str) {
    let nameless: Vec<String> = browser.execute(NAMELESS_CONTROLS, vec![]).await;
    assert!(
        nameless.is_empty(),
        "{page}: controls without an accessible name: {nameless:?}"
    );
    let count: usize = browser.execute(WATCH_FOCUS, vec![]).await;
    assert!(count > 0, "{page}: no controls at all");
    // Twice round, plus room for a date-time field's own segments (one Tab stop each) and
    // the browser's own stop between the page's last control and its first.
    let tabs = vec![keys::TAB; 2 * (count + 8)];
    browser.press(&tabs).await;
    let missed: Vec<String> = browser.execute(NEVER_FOCUSED, vec![]).await;
    assert!(
        missed.is_empty(),
        "{page}: controls Tab never reached: {missed:?}"
    );
}

/// The state text of the outbound message `body` on the page now.
async fn state_of(browser: &Browser, body: &str) -> Option<String> {
    browser.execute(STATE_OF, vec![json!(body)]).await
}

/// `Some` once the outbound message `body` shows `state`.
async fn shows(browser: &Browser, body: &str, state: &str) -> Option<()> {
    (state_of(browser, body).await? == state).then_some(())
}

/// Reloads the page until `check` finds what it looks for, for at most `seconds`.
async fn reload_until<T, F, Fut>(browser: &Browser, seconds: u64, what: &str, check: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let check = &check;
    eventually(seconds, what, || async move {
        let found = check().await;
        if found.is_none() {
            browser.refresh().await;
        }
        found
    })
    .await
}

/// The text of the first element matching `css`, read through a script so that a page
/// replaced meanwhile is no stale reference.
const TEXT_OF: &str = r#"
const el = document.querySelector(arguments[0]);
return el ? el.textContent.trim() : null;
"#;

/// Waits until the first element matching `css` reads `text` (the next page has loaded).
async fn wait_for_text(browser: &Browser, css: &str, text: &str) {
    let what = format!("{css} to read {text:?}");
    eventually(20, &what, || async move {
        let shown: Option<String> = browser.execute(TEXT_OF, vec![json!(css)]).await;
        (shown.as_deref() == Some(text)).then_some(())
    })
    .await
}

/// Waits until the address holds `part`; returns it.
async fn wait_for_url(browser: &Browser, part: &str) -> String {
    let what = format!("an address with {part:?}");
    eventually(20, &what, || async move {
        let url = browser.current_url().await;
        url.contains(part).then_some(url)
    })
    .await
}

/// The dashboard's "Texts in" and "Delivered" tiles.
async fn traffic(browser: &Browser) -> (u64, u64) {
    let mut tiles = [0; 2];
    for (tile, css) in tiles.iter_mut().zip(["#total-inbound", "#total-delivered"]) {
        let text: Option<String> = browser.execute(TEXT_OF, vec![json!(css)]).await;
        *tile = text
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{css} is a count"));
    }
    (tiles[0], tiles[1])
}

/// Types the key into the sign-in form and submits it.
async fn sign_in(browser: &Browser, key: &str) {
    browser.find("#api_key").await.send_keys(key).await;
    browser
        .find("form.login button[type=submit]")
        .await
        .click()
        .await;
}

#[tokio::test]
async fn an_operator_replies_watches_it_delivered_and_schedules_and_cancels_in_the_browser() {
    let stack = stack().await;
    let browser = Browser::start().await;
    let shot = |step: &str| screenshot_path("operator", step);

    // Signed out, the console asks for a key.
    browser.goto(&format!("{}/console", stack.gateway)).await;
    assert!(
        browser.current_url().await.ends_with("/console/login"),
        "{}",
        browser.current_url().await
    );
    sign_in(&browser, &stack.api_key).await;
    wait_for_text(&browser, "main h1", "Inbox").await;
    assert!(
        browser.cookie(parley_console::COOKIE).await.is_some(),
        "a session cookie"
    );
    // Today's traffic so far, as the dashboard tells it.
    browser
        .find("nav a[href='/console/dashboard']")
        .await
        .click()
        .await;
    wait_for_text(&browser, "main h1", "Dashboard").await;
    let (inbound_before, delivered_before) = traffic(&browser).await;
    browser.find("nav a[href='/console']").await.click().await;
    wait_for_text(&browser, "main h1", "Inbox").await;

    // A tenant texts in; the operator searches for the number as someone wrote it down.
    let phone = unique_phone();
    let hello = unique_body("Hello, is the office open on Saturday?");
    assert_eq!(
        stack
            .post_inbound(&InboundForm::new(&stack, &phone, &hello))
            .await
            .status,
        200
    );
    browser.find("#q").await.send_keys(&spaced(&phone)).await;
    browser
        .find("form.filters button[type=submit]")
        .await
        .click()
        .await;
    // The unfiltered inbox has conversation links too: look only once the search's page is
    // the one shown, or a link of the page being replaced goes stale under the test.
    wait_for_url(&browser, "q=").await;
    let masked = format!("•••-•••-{}", &phone[phone.len() - 4..]);
    let link = reload_until(&browser, 20, "the thread in the inbox search", || {
        browser.try_find("table.inbox a[href^='/console/conversations/']")
    })
    .await;
    assert_eq!(link.text().await, masked, "the number is masked");
    assert_eq!(
        browser.find("#q").await.property("value").await,
        json!(spaced(&phone)),
        "the search box keeps what was typed"
    );
    browser.screenshot(&shot("inbox")).await;
    assert_accessible(&browser, "inbox").await;

    link.click().await;
    let heading = browser.wait_for("main h1 .number", 20).await;
    assert_eq!(heading.text().await, masked);
    let thread = browser.current_url().await;
    let thread_path = thread
        .strip_prefix(&stack.gateway)
        .expect("a console URL")
        .to_owned();
    assert!(
        !thread.contains(&phone[2..]),
        "URLs never carry the number: {thread}"
    );
    assert_eq!(
        browser.find("ol.thread li.in .body").await.text().await,
        hello
    );

    // The counter under the reply box follows the typing: GSM-7 until a character outside
    // it, then UCS-2; and it ends where the server's own count does.
    let reply = unique_body("Yes, we open at 9. ✓");
    let counter = browser.find("#segments").await;
    assert_eq!(counter.text().await, "0 segments · GSM-7 · 0 characters");
    let body = browser.find("#body").await;
    let mut typed = String::new();
    for (part, shown) in [
        ("Yes, we open at 9.", "1 segment · GSM-7 · 18 characters"),
        (" ✓", "1 segment · UCS-2 · 20 characters"),
        (&reply["Yes, we open at 9. ✓".len()..], ""),
    ] {
        body.send_keys(part).await;
        typed.push_str(part);
        if !shown.is_empty() {
            assert_eq!(counter.text().await, shown, "after typing {typed:?}");
        }
    }
    let server = parley::segments::count(&reply);
    assert_eq!(
        counter.attribute("data-segments").await,
        Some(server.count.to_string())
    );
    assert_eq!(
        counter.attribute("data-encoding").await.as_deref(),
        Some(server.encoding.as_str())
    );
    browser
        .find("form.reply button[type=submit]")
        .await
        .click()
        .await;
    wait_for_text(&browser, "p.notice", "Sent: it is on its way.").await;
    reload_until(&browser, 45, "the reply shown delivered", || {
        shows(&browser, &reply, "delivered")
    })
    .await;
    browser.screenshot(&shot("thread-delivered")).await;
    assert_eq!(
        stack.sandbox_messages_with(&phone, &reply).await.len(),
        1,
        "Twilio was asked once"
    );

    // Tomorrow at 09:00 on the recipient's clock (the zone of the number, which the form
    // names), typed into the date-time field as a person would: month, day, year, Tab, hour,
    // minute, AM.
    let zone = parley::schedule::zones_for_number(&phone)
        .first()
        .expect("a zone for a US number")
        .clone();
    let tomorrow = parley::time::Timestamp::now()
        .jiff()
        .to_zoned_datetime(zone)
        .date()
        .tomorrow()
        .expect("a tomorrow");
    let (year, month, day) = (
        tomorrow.year().to_string(),
        format!("{:02}", tomorrow.month()),
        format!("{:02}", tomorrow.day()),
    );
    let later = unique_body("Reminder: the office opens at 9.");
    browser.find("#body").await.send_keys(&later).await;
    let when = browser.find("#send_at").await;
    when.send_keys(&format!("{month}{day}{year}{}0900AM", keys::TAB))
        .await;
    assert_eq!(
        when.property("value").await,
        json!(format!("{year}-{month}-{day}T09:00")),
        "the field reads what was typed"
    );
    browser
        .find("form.reply button[type=submit]")
        .await
        .click()
        .await;
    wait_for_text(
        &browser,
        "p.notice",
        "Scheduled: it will go at the time shown.",
    )
    .await;
    assert_eq!(
        state_of(&browser, &later).await.as_deref(),
        Some("scheduled")
    );
    browser.screenshot(&shot("thread-scheduled")).await;
    assert_accessible(&browser, "thread").await;

    // The queue lists it, due at 09:00 on the recipient's clock; it is canceled from there.
    browser
        .find("nav a[href='/console/queue']")
        .await
        .click()
        .await;
    browser.wait_for("form.filters #status", 20).await;
    browser
        .find("#status option[value=scheduled]")
        .await
        .click()
        .await;
    browser
        .find("form.filters button[type=submit]")
        .await
        .click()
        .await;
    wait_for_url(&browser, "status=scheduled").await;
    let row_xpath = format!("//table//tr[.//a[@href='{thread_path}']]");
    let mut row = None;
    for _ in 0..100 {
        row = browser.find_xpath(&row_xpath).await;
        if row.is_some() {
            break;
        }
        // The stack is shared: other tests' messages may come first.
        let Some(next) = browser.try_find("a[rel=next]").await else {
            break;
        };
        let href = next.attribute("href").await.expect("a next page");
        next.click().await;
        wait_for_url(&browser, &href).await;
    }
    let row = row.expect("the scheduled message is listed in the queue");
    let row_text = row.text().await;
    assert!(
        row_text.contains(&format!("{year}-{month}-{day} 09:00")),
        "due at 09:00 on the recipient's clock: {row_text}"
    );
    assert!(row_text.contains("scheduled"), "{row_text}");
    assert!(!row_text.contains(&phone[2..]), "masked in the queue");
    browser.screenshot(&shot("queue")).await;
    assert_accessible(&browser, "queue").await;
    row.find("button[type=submit]").await.click().await;
    wait_for_url(&browser, "notice=canceled").await;

    browser.goto(&thread).await;
    assert_eq!(
        state_of(&browser, &later).await.as_deref(),
        Some("canceled")
    );
    assert!(stack.sandbox_messages_with(&phone, &later).await.is_empty());

    // The dashboard now counts the text in and the delivered reply (its counters follow the
    // table's stream, so it is reloaded until they do).
    browser
        .find("nav a[href='/console/dashboard']")
        .await
        .click()
        .await;
    wait_for_text(&browser, "main h1", "Dashboard").await;
    reload_until(&browser, 30, "the new traffic on the dashboard", || async {
        let (inbound, delivered) = traffic(&browser).await;
        (inbound > inbound_before && delivered > delivered_before).then_some(())
    })
    .await;
    wait_for_text(
        &browser,
        "#chart-traffic title",
        "Texts in and messages out per hour (UTC)",
    )
    .await;
    browser.screenshot(&shot("dashboard")).await;
    assert_accessible(&browser, "dashboard").await;
    // An admin key also sees the rules.
    browser
        .find("nav a[href='/console/rules']")
        .await
        .click()
        .await;
    wait_for_text(&browser, "main h1", "Rules").await;
    assert_accessible(&browser, "rules").await;

    // Signing out ends the session: the console asks for a key again.
    browser
        .find("form.signout button[type=submit]")
        .await
        .click()
        .await;
    browser.wait_for("#api_key", 20).await;
    assert_eq!(browser.cookie(parley_console::COOKIE).await, None);
    browser.goto(&format!("{}/console", stack.gateway)).await;
    assert!(browser.current_url().await.ends_with("/console/login"));
}

#[tokio::test]
async fn the_login_page_refuses_a_wrong_key_with_a_message() {
    let stack = stack().await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("{}/console/login", stack.gateway))
        .await;
    browser.screenshot(&screenshot_path("login", "empty")).await;
    assert_accessible(&browser, "login").await;

    sign_in(&browser, "prly_not_a_key").await;
    let alert = browser.wait_for("p.error[role=alert]", 20).await;
    assert_eq!(
        alert.text().await,
        "That key is not valid, or lacks the read scope."
    );
    assert!(browser.current_url().await.ends_with("/console/login"));
    assert_eq!(browser.cookie(parley_console::COOKIE).await, None);
    browser
        .screenshot(&screenshot_path("login", "refused"))
        .await;
    browser.goto(&format!("{}/console", stack.gateway)).await;
    assert!(
        browser.current_url().await.ends_with("/console/login"),
        "still signed out"
    );
}
