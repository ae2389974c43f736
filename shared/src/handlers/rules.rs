//! The `rules` function: the rules API (admin) — `POST/GET /rules`, `GET/PUT/DELETE
//! /rules/{id}`, previews and activity — and `POST /events` (send scope), the door to the bus
//! for producers that are not on AWS.

use std::sync::Arc;

use http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde_json::Value;
use tracing::{info_span, Instrument};

use super::conversations::{open_cursor_of, seal_cursor};
use super::{api, request_id, ColdStart, InitError};
use crate::access::{Access, Scope};
use crate::config::required;
use crate::error::ApiError;
use crate::http::{body_bytes, json_response};
use crate::pending::Policy;
use crate::queue::JobQueue;
use crate::rules::engine::{Check, Engine, EngineError, Evaluation, RecipientSource};
use crate::rules::event::Event;
use crate::rules::ingest::{self, Bus, Entries};
use crate::rules::rule::{self, Rule, RuleSpec};
use crate::secrets::SecretStore;
use crate::send::SendService;
use crate::store::{keys, StoreError};
use crate::time::Timestamp;

pub const RULES_ROUTE: &str = "/rules";
pub const RULE_ROUTE: &str = "/rules/{rule_id}";
pub const EVENTS_ROUTE: &str = "/events";
/// `POST`: an unsaved rule against an event.
pub const PREVIEW_ROUTE: &str = "/rules/preview";
/// `POST`: a saved rule against an event.
pub const RULE_PREVIEW_ROUTE: &str = "/rules/{rule_id}/preview";
pub const RULE_ACTIVITY_ROUTE: &str = "/rules/{rule_id}/activity";
const MAX_REQUEST_BYTES: usize = 64 * 1024;
const DEFAULT_LIMIT: i32 = 20;
const MAX_LIMIT: i32 = 100;

pub struct RulesHandler {
    engine: Engine,
    access: Access,
    secrets: Arc<SecretStore>,
    bus: Option<Bus>,
}

impl RulesHandler {
    pub fn new(engine: Engine, secrets: Arc<SecretStore>, bus: Option<Bus>) -> Self {
        Self {
            access: Access::new(engine.service.store.clone(), secrets.clone()),
            engine,
            secrets,
            bus,
        }
    }

    pub async fn from_env() -> Result<Self, InitError> {
        let queue_url = required("SEND_QUEUE_URL")?;
        let bus = required("EVENT_BUS_NAME")?;
        let policy = Arc::new(Policy::from_env()?);
        let cold = ColdStart::load().await?;
        let monitor = super::event_router::monitor(&cold)?;
        let queue = JobQueue::new(aws_sdk_sqs::Client::new(&cold.sdk), queue_url);
        let bus = Bus {
            client: aws_sdk_eventbridge::Client::new(&cold.sdk),
            name: bus,
        };
        let service = SendService::new(cold.store, queue, policy);
        Ok(Self::new(
            Engine::new(service, monitor),
            cold.secrets,
            Some(bus),
        ))
    }

    pub async fn handle(&self, req: Request) -> Response<Body> {
        let span = info_span!("rules", request_id = %request_id(&req));
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let scope = match path.as_str() {
            EVENTS_ROUTE => Scope::Send,
            _ => Scope::Admin,
        };
        api::call(&self.access, &req, Some(scope), |_| self.route(&req, &path))
            .instrument(span)
            .await
    }

    async fn route(&self, req: &Request, path: &str) -> Result<Response<Body>, ApiError> {
        let rule_id = req.path_parameters().first("rule_id").map(str::to_owned);
        let tail = path.rsplit('/').next().unwrap_or_default();
        match (req.method(), rule_id, path) {
            (&Method::POST, None, EVENTS_ROUTE) => self.put_events(req).await,
            (&Method::POST, None, PREVIEW_ROUTE) => self.preview_unsaved(req).await,
            (&Method::POST, None, RULES_ROUTE) => self.create(req).await,
            (&Method::GET, None, RULES_ROUTE) => self.list().await,
            (&Method::POST, Some(id), _) if tail == "preview" => self.preview_saved(req, &id).await,
            (&Method::GET, Some(id), _) if tail == "activity" => self.activity(req, &id).await,
            (&Method::GET, Some(id), _) => self.get(req, &id).await,
            (&Method::PUT, Some(id), _) => self.update(req, &id).await,
            (&Method::DELETE, Some(id), _) => self.disable(&id).await,
            _ => Err(ApiError::NotFound {
                code: "not_found",
                message: "no such resource".into(),
            }),
        }
    }

    async fn create(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let spec = read_spec(body(req)?)?;
        let now = Timestamp::now();
        let rule = Rule {
            rule_id: ulid::Ulid::new().to_string(),
            version: 1,
            created_at: now,
            updated_at: now,
            spec,
        };
        self.store()
            .put_rule(&rule, None)
            .await
            .map_err(unavailable)?;
        tracing::info!(rule_id = %rule.rule_id, "rule created");
        Ok(json_response(StatusCode::CREATED, &rule))
    }

    async fn list(&self) -> Result<Response<Body>, ApiError> {
        let mut rules = self.store().rules().await.map_err(unavailable)?;
        rules.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        Ok(json_response(StatusCode::OK, &RuleList { rules }))
    }

    /// The current version, or `?version=N`.
    async fn get(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let query = req.query_string_parameters();
        let rule = match query.first("version") {
            None => self.store().rule(id).await,
            Some(v) => {
                let v: u32 = v.parse().map_err(|_| {
                    ApiError::bad_request("invalid_version", "version must be a whole number")
                })?;
                self.store().rule_version(id, v).await
            }
        };
        let rule = rule.map_err(unavailable)?.ok_or_else(not_found)?;
        Ok(json_response(StatusCode::OK, &rule))
    }

    /// A new version with the body as its spec; messages made since name the version.
    async fn update(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let spec = read_spec(body(req)?)?;
        self.change(id, |_| spec.clone()).await
    }

    /// Disables the rule (a new version, kept for audit with every earlier one).
    async fn disable(&self, id: &str) -> Result<Response<Body>, ApiError> {
        self.change(id, |current| RuleSpec {
            enabled: false,
            ..current.clone()
        })
        .await
    }

    async fn change(
        &self,
        id: &str,
        spec: impl Fn(&RuleSpec) -> RuleSpec,
    ) -> Result<Response<Body>, ApiError> {
        let rule = change_rule(self.store(), id, spec).await?;
        Ok(json_response(StatusCode::OK, &rule))
    }

    async fn activity(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        if self.store().rule(id).await.map_err(unavailable)?.is_none() {
            return Err(not_found());
        }
        let query = req.query_string_parameters();
        let limit = crate::http::page_limit(query.first("limit"), DEFAULT_LIMIT, MAX_LIMIT)?;
        let pk = keys::rule_activity_pk(id);
        let key = self.secrets.current().cursor_key().to_owned();
        let after = query
            .first("cursor")
            .map(|c| open_cursor_of(&key, &pk, c, |_| true))
            .transpose()?;
        let (entries, next) = self
            .store()
            .activity_page(id, limit, after.as_deref())
            .await
            .map_err(unavailable)?;
        Ok(json_response(
            StatusCode::OK,
            &ActivityPage {
                activity: entries,
                next_cursor: next.map(|sk| seal_cursor(&key, &pk, &sk)),
            },
        ))
    }

    /// `POST /rules/preview` with `{"rule": {…}, "event": {…}}`.
    async fn preview_unsaved(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let mut value = json_body(body(req)?)?;
        let spec = match value.get_mut("rule").map(Value::take) {
            Some(rule) => read_spec(&serde_json::to_vec(&rule).unwrap_or_default())?,
            None => return Err(missing("rule", "the rule to preview")),
        };
        let now = Timestamp::now();
        let rule = Rule {
            rule_id: "preview".into(),
            version: 0,
            created_at: now,
            updated_at: now,
            spec,
        };
        self.preview(&rule, value, now).await
    }

    /// `POST /rules/{id}/preview` with `{"event": {…}}`.
    async fn preview_saved(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let value = json_body(body(req)?)?;
        let rule = self
            .store()
            .rule(id)
            .await
            .map_err(unavailable)?
            .ok_or_else(not_found)?;
        self.preview(&rule, value, Timestamp::now()).await
    }

    async fn preview(
        &self,
        rule: &Rule,
        body: Value,
        now: Timestamp,
    ) -> Result<Response<Body>, ApiError> {
        let sampled = preview_sample(&self.engine, rule, body, now).await?;
        Ok(json_response(StatusCode::OK, &sampled.preview(rule)))
    }

    /// `POST /events`: up to 10 entries in PutEvents' shape, published to Parley's bus.
    async fn put_events(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let entries =
            Entries::from_json(body(req)?).map_err(|fields| ApiError::Validation { fields })?;
        let Some(bus) = &self.bus else {
            return Err(ApiError::Internal("no event bus configured".into()));
        };
        let ids = entries
            .publish(bus)
            .await
            .map_err(|e| ApiError::Unavailable(e.into()))?;
        tracing::info!(count = ids.len(), "events published");
        Ok(json_response(
            StatusCode::ACCEPTED,
            &EventsAccepted { event_ids: ids },
        ))
    }

    fn store(&self) -> &crate::store::Store {
        &self.engine.service.store
    }
}

/// A new version of rule `id` with `spec` applied to its current spec, written only if no
/// other change came first (the API's `PUT`/`DELETE`, the console's enable and disable).
pub async fn change_rule(
    store: &crate::store::Store,
    id: &str,
    spec: impl Fn(&RuleSpec) -> RuleSpec,
) -> Result<Rule, ApiError> {
    let current = store
        .rule(id)
        .await
        .map_err(unavailable)?
        .ok_or_else(not_found)?;
    let rule = Rule {
        version: current.version + 1,
        updated_at: Timestamp::now(),
        spec: spec(&current.spec),
        ..current.clone()
    };
    if !store
        .put_rule(&rule, Some(current.version))
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::Conflict {
            code: "rule_changed",
            message: "the rule was changed by another request; read it and try again".into(),
        });
    }
    tracing::info!(rule_id = %rule.rule_id, version = rule.version, enabled = rule.spec.enabled, "rule changed");
    Ok(rule)
}

/// A sample event as the router would take it, and what the rule decides about it.
pub struct Sampled {
    pub event: Event,
    pub matches: bool,
    pub cancels: bool,
    pub evaluation: Evaluation,
}

impl Sampled {
    pub fn preview<'a>(&'a self, rule: &'a Rule) -> Preview<'a> {
        Preview::of(
            rule,
            &self.event,
            self.matches,
            self.cancels,
            &self.evaluation,
        )
    }
}

/// Evaluates `rule` against the `event` of `body` (`{"event": {…}}`, completed like the
/// router completes a sample): everything the router would decide, nothing written.
pub async fn preview_sample(
    engine: &Engine,
    rule: &Rule,
    mut body: Value,
    now: Timestamp,
) -> Result<Sampled, ApiError> {
    let Some(sample) = body.get_mut("event").map(Value::take) else {
        return Err(missing("event", "a sample event"));
    };
    let event = Event::from_json(ingest::complete_sample(sample, now)).map_err(|e| {
        ApiError::Validation {
            fields: [("event", e.to_string())].into(),
        }
    })?;
    let matches = rule.spec.pattern.matches(&event.raw);
    let cancels = rule.spec.cancel_on.iter().any(|p| p.matches(&event.raw));
    let evaluation = engine
        .evaluate(rule, &event, now)
        .await
        .map_err(engine_error)?;
    Ok(Sampled {
        event,
        matches,
        cancels,
        evaluation,
    })
}

/// `GET /rules`: every rule at its current version, by id.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleList {
    pub rules: Vec<Rule>,
}

/// `GET /rules/{rule_id}/activity`: what the rule did with each event, newest first.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityPage {
    pub activity: Vec<crate::rules::activity::Activity>,
    pub next_cursor: Option<String>,
}

/// `POST /events`: the bus's id of each entry, in order.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsAccepted {
    pub event_ids: Vec<String>,
}

/// What a preview answers: everything the router would decide, nothing written.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preview<'a> {
    pub rule_id: &'a str,
    pub rule_version: u32,
    /// Whether the rule's `match` fits the event (the rest is evaluated either way).
    pub matches: bool,
    /// Whether one of its `cancel_on` patterns fits it.
    pub cancels: bool,
    pub event_id: &'a str,
    pub dedupe_key: &'a str,
    pub recipient: Option<&'a str>,
    pub recipient_source: Option<RecipientSource>,
    pub tenant_id: Option<&'a str>,
    pub language: Option<&'a str>,
    pub language_source: Option<crate::rules::render::LanguageSource>,
    pub body: Option<&'a str>,
    pub segments: Option<u32>,
    pub encoding: Option<&'a str>,
    /// The time asked for, before quiet hours.
    pub requested_at: Option<Timestamp>,
    pub send_at: Option<Timestamp>,
    pub state: Option<crate::pipeline::PipelineState>,
    pub deferred_by_quiet_hours: bool,
    pub time_zone: Option<&'a str>,
    pub time_zone_source: Option<crate::schedule::ZoneSource>,
    pub mode: crate::rules::rule::Mode,
    /// Everything that would stop it; empty when it would be sent.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Check>))]
    pub checks: &'a [Check],
    pub would_send: bool,
}

impl<'a> Preview<'a> {
    fn of(
        rule: &'a Rule,
        event: &'a Event,
        matches: bool,
        cancels: bool,
        e: &'a Evaluation,
    ) -> Self {
        let plan = e.plan.as_ref();
        Self {
            rule_id: &rule.rule_id,
            rule_version: rule.version,
            matches,
            cancels,
            event_id: &event.id,
            dedupe_key: &e.dedupe_key,
            recipient: e.recipient.as_ref().map(|a| a.e164.as_str()),
            recipient_source: e.recipient_source,
            tenant_id: e.tenant_id.as_deref(),
            language: e.language.as_ref().map(|c| c.key),
            language_source: e.language.as_ref().map(|c| c.source),
            body: e.rendered.as_ref().map(|r| r.body.as_str()),
            segments: e.rendered.as_ref().map(|r| r.segments.count),
            encoding: e.rendered.as_ref().map(|r| r.segments.encoding.as_str()),
            requested_at: plan.map(|p| p.requested),
            send_at: plan.map(|p| p.accepted.send_at),
            state: plan.map(|p| p.accepted.status),
            deferred_by_quiet_hours: plan
                .is_some_and(|p| p.accepted.status == crate::pipeline::PipelineState::Deferred),
            time_zone: plan.map(|p| p.accepted.time_zone.as_str()),
            time_zone_source: plan.map(|p| p.accepted.time_zone_source),
            mode: rule.spec.mode,
            checks: &e.checks,
            would_send: matches
                && e.checks.is_empty()
                && plan.is_some()
                && rule.spec.enabled
                && rule.spec.mode == crate::rules::rule::Mode::Live,
        }
    }
}

fn body(req: &Request) -> Result<&[u8], ApiError> {
    let raw = body_bytes(req);
    if raw.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_REQUEST_BYTES,
        });
    }
    Ok(raw)
}

fn json_body(raw: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice(raw) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        )),
    }
}

fn read_spec(raw: &[u8]) -> Result<RuleSpec, ApiError> {
    rule::validate(raw).map_err(|fields| match fields.get("request") {
        Some(m) if fields.len() == 1 && m.starts_with("the body") => {
            ApiError::bad_request("invalid_json", m.clone())
        }
        _ => ApiError::Validation { fields },
    })
}

fn missing(field: &'static str, what: &str) -> ApiError {
    ApiError::Validation {
        fields: [(field, format!("required: {what}"))].into(),
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound {
        code: "rule_not_found",
        message: "there is no rule with this id".into(),
    }
}

fn unavailable(e: StoreError) -> ApiError {
    ApiError::Unavailable(e.into())
}

fn engine_error(e: EngineError) -> ApiError {
    ApiError::Unavailable(e.into())
}
