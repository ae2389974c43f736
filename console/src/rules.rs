//! The rules pages, for admin sessions only (the rules API is admin-scoped, and a preview
//! resolves a real recipient): the list, one rule with its recent activity, enable and
//! disable (each a new version, as through the API), and a preview against a sample event
//! that writes nothing.

use http::StatusCode;
use lambda_http::{Body, Response};
use maud::{html, Markup};
use parley::error::ApiError;
use parley::handlers::rules::{change_rule, preview_sample, Preview};
use parley::rules::activity::Activity;
use parley::rules::rule::{Mode, Rule, RuleSpec};
use parley::time::Timestamp;
use parley::twilio::form::Form;
use serde_json::{json, Map, Value};

use crate::pages::{layout, Chrome};
use crate::response::{page, redirect};
use crate::{mask, ConsoleError, ConsoleHandler};

const ACTIVITY_PAGE: i32 = 20;

fn forbidden() -> ConsoleError {
    ConsoleError::Forbidden("Rules are for admin keys: sign in with one to see them.".into())
}

/// The API's refusals, as the console says them.
fn from_api(e: ApiError) -> ConsoleError {
    match e {
        ApiError::NotFound { .. } => ConsoleError::NotFound,
        ApiError::Unavailable(_) => ConsoleError::Unavailable,
        ApiError::Validation { fields } => ConsoleError::BadRequest(crate::field_errors(&fields)),
        other => ConsoleError::BadRequest(other.to_string()),
    }
}

/// A skeleton event the rule's `match` accepts as far as its literal values go: the first
/// listed value of every field, nested as in the pattern. A starting point to edit, not a
/// guarantee (numeric ranges, prefixes and the like are left out).
fn sample_for(spec: &RuleSpec) -> Value {
    fn skeleton(pattern: &Value) -> Option<Value> {
        match pattern {
            Value::Object(fields) => {
                let object: Map<String, Value> = fields
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), skeleton(v)?)))
                    .collect();
                Some(Value::Object(object))
            }
            Value::Array(values) => values
                .iter()
                .find(|v| v.is_string() || v.is_number() || v.is_boolean())
                .cloned(),
            _ => None,
        }
    }
    let pattern = serde_json::to_value(&spec.pattern).unwrap_or(Value::Null);
    let mut event = skeleton(&pattern).unwrap_or_else(|| json!({}));
    if let Value::Object(fields) = &mut event {
        fields.entry("detail").or_insert_with(|| json!({}));
    }
    json!({ "event": event })
}

impl ConsoleHandler {
    /// `GET /console/rules`: one Query.
    pub(crate) async fn rules(&self, chrome: &Chrome<'_>) -> Result<Response<Body>, ConsoleError> {
        if !chrome.admin {
            return Err(forbidden());
        }
        let mut rules = self.store.rules().await?;
        rules.sort_by(|a, b| {
            a.spec
                .name
                .cmp(&b.spec.name)
                .then(a.rule_id.cmp(&b.rule_id))
        });
        Ok(page(StatusCode::OK, list(chrome, &rules)))
    }

    /// `GET /console/rules/{id}`: the rule and its latest activity, two store requests.
    pub(crate) async fn rule(
        &self,
        chrome: &Chrome<'_>,
        id: &str,
        notice: Option<&'static str>,
    ) -> Result<Response<Body>, ConsoleError> {
        let view = self.rule_view(chrome, id).await?;
        let sample = serde_json::to_string_pretty(&sample_for(&view.rule.spec)).unwrap_or_default();
        Ok(page(
            StatusCode::OK,
            detail(chrome, &view, &sample, None, notice),
        ))
    }

    async fn rule_view(&self, chrome: &Chrome<'_>, id: &str) -> Result<RuleView, ConsoleError> {
        if !chrome.admin {
            return Err(forbidden());
        }
        let rule = self.store.rule(id).await?.ok_or(ConsoleError::NotFound)?;
        let (activity, _) = self.store.activity_page(id, ACTIVITY_PAGE, None).await?;
        Ok(RuleView { rule, activity })
    }

    /// `POST /console/rules/{id}/enable|disable`: a new version, as `PUT /rules/{id}` makes.
    pub(crate) async fn set_enabled(
        &self,
        chrome: &Chrome<'_>,
        id: &str,
        enabled: bool,
    ) -> Result<Response<Body>, ConsoleError> {
        if !chrome.admin {
            return Err(forbidden());
        }
        change_rule(&self.store, id, |current| RuleSpec {
            enabled,
            ..current.clone()
        })
        .await
        .map_err(from_api)?;
        tracing::info!(target: "access", key_id = %chrome.key_id, rule_id = %id, enabled, "console: rule changed");
        let notice = if enabled { "enabled" } else { "disabled" };
        Ok(redirect(
            &format!("/console/rules/{id}?notice={notice}"),
            &[],
        ))
    }

    /// `POST /console/rules/{id}/preview`: the router's decision on the sample, nothing
    /// written; the page again with the answer (or what is wrong with the sample).
    pub(crate) async fn preview(
        &self,
        chrome: &Chrome<'_>,
        id: &str,
        form: &Form,
    ) -> Result<Response<Body>, ConsoleError> {
        let view = self.rule_view(chrome, id).await?;
        let sample = form.get("sample").unwrap_or_default().to_owned();
        let outcome = match serde_json::from_str::<Value>(&sample) {
            Err(e) => Err(format!("The sample is not JSON: {e}")),
            Ok(body) if body.get("event").is_none() => {
                Err("The sample must be {\"event\": {…}}.".to_owned())
            }
            Ok(body) => preview_sample(&self.engine, &view.rule, body, Timestamp::now())
                .await
                .map_err(|e| match from_api(e) {
                    ConsoleError::BadRequest(m) => m,
                    other => format!("{other:?}"),
                }),
        };
        let (status, markup) = match &outcome {
            Ok(sampled) => (
                StatusCode::OK,
                detail(
                    chrome,
                    &view,
                    &sample,
                    Some(Ok(&sampled.preview(&view.rule))),
                    None,
                ),
            ),
            Err(why) => (
                StatusCode::BAD_REQUEST,
                detail(chrome, &view, &sample, Some(Err(why)), None),
            ),
        };
        Ok(page(status, markup))
    }
}

pub struct RuleView {
    pub rule: Rule,
    pub activity: Vec<Activity>,
}

fn mode(rule: &Rule) -> &'static str {
    match rule.spec.mode {
        Mode::Live => "live",
        Mode::Shadow => "shadow",
    }
}

fn list(chrome: &Chrome<'_>, rules: &[Rule]) -> Markup {
    layout(
        "Rules",
        Some(chrome),
        html! {
            h1 { "Rules" }
            p.hint { "Rules turn events on Parley's bus into messages. Create and edit them through the rules API (PUT /rules/{id}); enable, disable, preview and watch them here." }
            @if rules.is_empty() {
                p.empty { "No rules yet." }
            } @else {
                table.rules {
                    caption.visually-hidden { "Rules, by name" }
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "State" } th scope="col" { "Mode" }
                        th scope="col" { "Version" } th scope="col" { "Updated" }
                    } }
                    tbody {
                        @for rule in rules {
                            tr {
                                td { a href={ "/console/rules/" (rule.rule_id) } { (rule.spec.name) } }
                                td { @if rule.spec.enabled { span.badge.ok { "enabled" } } @else { span.badge.out { "disabled" } } }
                                td { (mode(rule)) }
                                td { (rule.version) }
                                td { time.local datetime=(rule.updated_at.to_string()) { (rule.updated_at.to_string()) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn detail(
    chrome: &Chrome<'_>,
    view: &RuleView,
    sample: &str,
    preview: Option<Result<&Preview<'_>, &String>>,
    notice: Option<&str>,
) -> Markup {
    let rule = &view.rule;
    let here = format!("/console/rules/{}", rule.rule_id);
    let spec = serde_json::to_string_pretty(&rule.spec).unwrap_or_default();
    layout(
        "Rule",
        Some(chrome),
        html! {
            h1 { "Rule: " (rule.spec.name) }
            p.meta {
                "version " (rule.version) " · " (mode(rule)) " · "
                @if rule.spec.enabled { span.badge.ok { "enabled" } } @else { span.badge.out { "disabled" } }
            }
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            @if let Some(description) = &rule.spec.description { p { (description) } }
            form.inline method="post" action={ (here) (if rule.spec.enabled { "/disable" } else { "/enable" }) } {
                input type="hidden" name="csrf" value=(chrome.csrf);
                button type="submit" { (if rule.spec.enabled { "Disable this rule" } else { "Enable this rule" }) }
                small { " (a new version; every earlier one is kept)" }
            }
            details {
                summary { "The rule as stored (JSON)" }
                pre.spec { (spec) }
            }
            h2 #preview-heading { "Preview with a sample event" }
            form.preview method="post" action={ (here) "/preview" } aria-labelledby="preview-heading" {
                input type="hidden" name="csrf" value=(chrome.csrf);
                label for="sample" { "Sample (" code { "{\"event\": {…}}" } "; missing id, time and account are filled in)" }
                textarea #sample name="sample" rows="10" spellcheck="false" { (sample) }
                button type="submit" { "Preview (sends nothing)" }
            }
            @match preview {
                Some(Ok(p)) => (preview_result(p)),
                Some(Err(why)) => p.error role="alert" { (why) },
                None => {},
            }
            h2 { "Recent activity" }
            @if view.activity.is_empty() {
                p.empty { "No event has reached this rule yet." }
            } @else {
                table.activity {
                    caption.visually-hidden { "What the rule did with each event, newest first" }
                    thead { tr {
                        th scope="col" { "Event time" } th scope="col" { "Event" } th scope="col" { "Outcome" }
                        th scope="col" { "Message" } th scope="col" { "Version" }
                    } }
                    tbody {
                        @for a in &view.activity {
                            tr {
                                td { time.local datetime=(a.event_time.to_string()) { (a.event_time.to_string()) } }
                                td { (a.source) " / " (a.detail_type) }
                                td { (a.outcome.as_str())
                                     @if let Some(state) = a.state { " " small { "(" (state.as_str()) ")" } } }
                                td { @if let Some(id) = &a.message_id { code { (id) } } @else { "—" } }
                                td { (a.rule_version) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn preview_result(p: &Preview<'_>) -> Markup {
    html! {
        section.preview-result aria-labelledby="preview-result" role="status" {
            h3 #preview-result {
                @if p.would_send { "It would send." } @else { "It would not send." }
            }
            dl {
                dt { "Pattern matches" } dd { (if p.matches { "yes" } else { "no" }) }
                @if p.cancels { dt { "Cancels" } dd { "yes: a cancel_on pattern fits this event" } }
                dt { "Recipient" } dd {
                    @match p.recipient.and_then(|r| parley::phone::E164::parse(r).ok()) {
                        Some(phone) => (mask::masked(&phone)),
                        None => "unresolved",
                    }
                    @if let Some(source) = p.recipient_source { " " small { "(" (format!("{source:?}").to_lowercase()) ")" } }
                }
                @if let Some(language) = p.language { dt { "Language" } dd { (language) } }
                @if let Some(body) = p.body {
                    dt { "Body" } dd { pre.body { (body) } }
                    dd { (p.segments.unwrap_or(0)) " segment(s), " (p.encoding.unwrap_or("—")) }
                }
                @if let Some(at) = p.send_at {
                    dt { "Would go at" } dd {
                        time.local datetime=(at.to_string()) { (at.to_string()) }
                        @if let Some(zone) = p.time_zone { " · recipient's zone " (zone) }
                        @if p.deferred_by_quiet_hours { " · held by quiet hours" }
                    }
                }
                @if !p.checks.is_empty() {
                    dt { "Stopped by" }
                    @for check in p.checks {
                        dd { (check.outcome().as_str()) @if let Some(reason) = check.reason() { ": " (reason) } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_takes_the_first_literal_of_each_field_of_the_pattern() {
        let spec = parley::rules::rule::validate(
            json!({
                "name": "late rent",
                "match": {"source": ["collections"], "detail-type": ["PaymentMissed", "PaymentLate"],
                          "detail": {"amount": [{"numeric": [">", 0]}], "tenant": {"tier": ["gold"]}}},
                "recipient": {"phone": "$.detail.phone"},
                "template": {"default": "Hi"},
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let sample = sample_for(&spec);
        assert_eq!(sample["event"]["source"], "collections");
        assert_eq!(sample["event"]["detail-type"], "PaymentMissed");
        assert_eq!(sample["event"]["detail"]["tenant"]["tier"], "gold");
        assert!(sample["event"]["detail"].get("amount").is_none());
    }
}
