//! The CPU the event router spends on one event with 100 rules loaded, before any I/O: every
//! enabled rule's `match` and `cancel_on` patterns tried against the event (what
//! `EventRouter::route` does), and for each rule that matches the texts `Engine::evaluate`
//! renders — the dedupe key, the body in the recipient's language (`Templates::choose` +
//! `render`) and the workflow texts — plus the dedupe key `Engine::cancel` renders for a rule
//! whose `cancel_on` matches. Recipients, reads, timing and writes are not included.
//!
//! The 100 rules are built from JSON through `parley::rules::rule::validate`, as `POST /rules`
//! builds them; the event is an `invoice.overdue` EventBridge envelope, the body of the SQS
//! message the router receives, read once with `Event::from_json`. Three rules match it, two
//! more cancel on it; the others do not match (half share its source, a fifth its source and
//! detail-type, so matching descends into `detail`).
//!
//! The render context is built three ways:
//!
//! - **(a) per render**, as `Engine::evaluate` did before this benchmark: `event.context(..)`
//!   (a JSON value cloned from the event) for the dedupe key and again for the body, and each
//!   `render` converts that JSON into a template value (`Context::from_json`) again;
//! - **(e) per evaluation**, as `Engine::evaluate` did next: one `Context::from_json` for
//!   the dedupe key and the texts of one rule (two when the tenant known to the dedupe key is
//!   not the one known to the body), used with `render_with`;
//! - **(b) per event**: each context (with the tenant, and without one for `cancel_on`)
//!   converted at most once per event and shared by every rule;
//! - **(c) the engine now**: `Event::template_context`, the event converted for templates
//!   once, straight from the parsed event (no JSON copy), with the tenant as an overlay. The
//!   conversion is cached on the event, so this row reads a fresh event from the SQS body on
//!   every call (as the router does) and the parse is also shown on its own and subtracted.
//!
//! Each call is timed on its own with `Instant` (p50/p99/max), after a warm-up; the mean is
//! also taken from the process CPU clock (`CLOCK_PROCESS_CPUTIME_ID`) over a second, untimed
//! loop of the same calls, so preemption by other processes does not inflate it.
//!
//! Environment: `BENCH_ITERATIONS` (default 100000), `BENCH_WARMUP` (default 10000).

mod common;

use std::time::{Duration, Instant};

use common::{env_number, micros, time, Summary};
use parley::language::Language;
use parley::rules::event::Event;
use parley::rules::render::{Context, Text};
use parley::rules::rule::{self, Recipient, RuleSpec};
use serde_json::{json, Value};

/// The body of the SQS message the router's queue receives from the bus rule.
const SQS_BODY: &str = r#"{"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "invoice.overdue", "source": "billing", "account": "123456789012", "time": "2026-12-14T15:00:00Z", "region": "us-east-1", "resources": [], "detail": {"tenant_id": "t-1005", "first_name": "Ana", "invoice_id": "INV-1001", "amount": "$1,250.00", "amount_cents": 125000, "late_fee": "$75.00", "currency": "USD", "status": "overdue", "days_overdue": 12, "due_date": "2026-12-02", "phone": "+1 (415) 555-0105", "property": {"id": "P-22", "name": "Maple Court", "unit": "4B"}, "portfolio": "bay-area", "line_items": [{"description": "Rent, December", "amount": "$1,175.00"}, {"description": "Late fee", "amount": "$75.00"}]}}"#;

/// The tenant the recipient resolves to (or whose number it is), and its language preference.
const TENANT: &str = "t-1005";
const TENANT_LANGUAGE: Language = Language::Es;

const MATCHING: usize = 3;
const CANCELING: usize = 2;

// ---------------------------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------------------------

/// One kind of rule: an event type with its texts, a numeric field it may be filtered on, and
/// what cancels its message.
struct Kind {
    source: &'static str,
    detail_type: &'static str,
    en: &'static str,
    es: Option<&'static str>,
    default: Option<&'static str>,
    numeric: &'static str,
    dedupe: &'static str,
    cancel_on: [&'static str; 2],
    workflow_type: Option<&'static str>,
    workflow_id: Option<&'static str>,
    tenant_recipient: bool,
}

const KINDS: &[Kind] = &[
    Kind {
        source: "billing",
        detail_type: "invoice.created",
        en: "Hi {{ detail.first_name }}, your invoice {{ detail.invoice_id }} for {{ detail.amount }} is ready and due {{ detail.due_date }}.{% if detail.autopay_enrolled %} It will be paid automatically.{% else %} Pay online at https://pay.example.com.{% endif %} Reply HELP for help.",
        es: Some("Hola {{ detail.first_name }}, su factura {{ detail.invoice_id }} por {{ detail.amount }} está lista y vence el {{ detail.due_date }}.{% if detail.autopay_enrolled %} Se pagará automáticamente.{% else %} Pague en línea en https://pay.example.com.{% endif %} Responda AYUDA."),
        default: None,
        numeric: "amount_cents",
        dedupe: "invoice-created-{{ detail.invoice_id }}",
        cancel_on: ["invoice.voided", "payment.received"],
        workflow_type: Some("billing"),
        workflow_id: Some("{{ detail.invoice_id }}"),
        tenant_recipient: true,
    },
    Kind {
        source: "billing",
        detail_type: "invoice.due_soon",
        en: "Reminder: invoice {{ detail.invoice_id }} for {{ detail.amount }} at {{ detail.property.name }} is due in {{ detail.days_left }} days ({{ detail.due_date }}).{% if detail.autopay_enrolled %} Autopay is on, no action needed.{% endif %}",
        es: Some("Recordatorio: la factura {{ detail.invoice_id }} por {{ detail.amount }} de {{ detail.property.name }} vence en {{ detail.days_left }} días ({{ detail.due_date }}).{% if detail.autopay_enrolled %} El pago automático está activo.{% endif %}"),
        default: Some("Invoice {{ detail.invoice_id }} ({{ detail.amount }}) is due {{ detail.due_date }}."),
        numeric: "days_left",
        dedupe: "due-soon-{{ detail.invoice_id }}",
        cancel_on: ["payment.received", "invoice.voided"],
        workflow_type: None,
        workflow_id: Some("{{ detail.invoice_id }}"),
        tenant_recipient: true,
    },
    Kind {
        source: "billing",
        detail_type: "payment.received",
        en: "Thanks {{ detail.first_name }}! We received {{ detail.amount }} for invoice {{ detail.invoice_id }} (receipt {{ detail.receipt_id }}).{% if detail.balance_remaining %} Remaining balance: {{ detail.balance_remaining }}.{% endif %}",
        es: Some("¡Gracias {{ detail.first_name }}! Recibimos {{ detail.amount }} para la factura {{ detail.invoice_id }} (recibo {{ detail.receipt_id }}).{% if detail.balance_remaining %} Saldo restante: {{ detail.balance_remaining }}.{% endif %}"),
        default: None,
        numeric: "amount_cents",
        dedupe: "receipt-{{ detail.receipt_id }}",
        cancel_on: ["payment.reversed", "refund.issued"],
        workflow_type: Some("billing"),
        workflow_id: None,
        tenant_recipient: true,
    },
    Kind {
        source: "billing",
        detail_type: "payment.failed",
        en: "Hi {{ detail.first_name }}, your payment of {{ detail.amount }} with card ending {{ detail.last4 }} did not go through.{% if detail.retry_date %} We will try again on {{ detail.retry_date }}.{% endif %} Update it at https://pay.example.com.",
        es: Some("Hola {{ detail.first_name }}, su pago de {{ detail.amount }} con la tarjeta terminada en {{ detail.last4 }} no se procesó.{% if detail.retry_date %} Lo intentaremos de nuevo el {{ detail.retry_date }}.{% endif %} Actualícela en https://pay.example.com."),
        default: None,
        numeric: "attempt",
        dedupe: "payment-failed-{{ detail.payment_id }}",
        cancel_on: ["payment.received", "payment.method_updated"],
        workflow_type: Some("collections"),
        workflow_id: Some("{{ detail.invoice_id }}"),
        tenant_recipient: false,
    },
    Kind {
        source: "billing",
        detail_type: "payment.promised",
        en: "Thanks {{ detail.first_name }}. We noted your promise to pay {{ detail.amount }} on invoice {{ detail.invoice_id }} by {{ detail.promise_date }}.{% if detail.plan %} Your plan: {{ detail.plan }}.{% endif %}",
        es: Some("Gracias {{ detail.first_name }}. Anotamos su compromiso de pagar {{ detail.amount }} de la factura {{ detail.invoice_id }} antes del {{ detail.promise_date }}.{% if detail.plan %} Su plan: {{ detail.plan }}.{% endif %}"),
        default: None,
        numeric: "amount_cents",
        dedupe: "promise-{{ detail.invoice_id }}",
        cancel_on: ["payment.received", "invoice.overdue"],
        workflow_type: Some("collections"),
        workflow_id: Some("{{ detail.invoice_id }}"),
        tenant_recipient: true,
    },
    Kind {
        source: "maintenance",
        detail_type: "work_order.scheduled",
        en: "Hi {{ detail.first_name }}, your {{ detail.category }} request {{ detail.work_order_id }} is scheduled for {{ detail.window_start }} with {{ detail.technician }}.{% if detail.access_notes %} Access notes: {{ detail.access_notes }}.{% endif %} Reply R to reschedule.",
        es: Some("Hola {{ detail.first_name }}, su solicitud de {{ detail.category }} {{ detail.work_order_id }} está programada para {{ detail.window_start }} con {{ detail.technician }}.{% if detail.access_notes %} Notas de acceso: {{ detail.access_notes }}.{% endif %} Responda R para cambiarla."),
        default: None,
        numeric: "priority",
        dedupe: "wo-{{ detail.work_order_id }}-scheduled",
        cancel_on: ["work_order.canceled", "work_order.rescheduled"],
        workflow_type: Some("maintenance"),
        workflow_id: Some("{{ detail.work_order_id }}"),
        tenant_recipient: false,
    },
    Kind {
        source: "maintenance",
        detail_type: "technician.en_route",
        en: "{{ detail.technician }} is on the way for work order {{ detail.work_order_id }} at {{ detail.property.name }} unit {{ detail.property.unit }}, about {{ detail.eta_minutes }} minutes out.{% if detail.vehicle %} Look for a {{ detail.vehicle }}.{% endif %}",
        es: Some("{{ detail.technician }} va en camino para la orden {{ detail.work_order_id }} en {{ detail.property.name }} unidad {{ detail.property.unit }}, llega en unos {{ detail.eta_minutes }} minutos.{% if detail.vehicle %} Busque un {{ detail.vehicle }}.{% endif %}"),
        default: None,
        numeric: "eta_minutes",
        dedupe: "wo-{{ detail.work_order_id }}-en-route",
        cancel_on: ["work_order.canceled", ""],
        workflow_type: None,
        workflow_id: Some("{{ detail.work_order_id }}"),
        tenant_recipient: false,
    },
    Kind {
        source: "maintenance",
        detail_type: "work_order.completed",
        en: "Work order {{ detail.work_order_id }} ({{ detail.category }}) at {{ detail.property.name }} was completed on {{ detail.completed_at }}.{% if detail.survey_url %} Tell us how we did: {{ detail.survey_url }}{% endif %}",
        es: Some("La orden {{ detail.work_order_id }} ({{ detail.category }}) en {{ detail.property.name }} se completó el {{ detail.completed_at }}.{% if detail.survey_url %} Cuéntenos cómo lo hicimos: {{ detail.survey_url }}{% endif %}"),
        default: Some("Work order {{ detail.work_order_id }} is complete."),
        numeric: "hours_spent",
        dedupe: "wo-{{ detail.work_order_id }}-done",
        cancel_on: ["work_order.reopened", ""],
        workflow_type: Some("maintenance"),
        workflow_id: Some("{{ detail.work_order_id }}"),
        tenant_recipient: true,
    },
    Kind {
        source: "maintenance",
        detail_type: "inspection.scheduled",
        en: "Notice: a unit inspection at {{ detail.property.name }}, unit {{ detail.property.unit }}, is set for {{ detail.date }} between {{ detail.window }}.{% if detail.pets %} Please secure pets during the visit.{% endif %}",
        es: None,
        default: Some("Inspection at {{ detail.property.name }} {{ detail.property.unit }} on {{ detail.date }}."),
        numeric: "notice_days",
        dedupe: "inspection-{{ detail.inspection_id }}",
        cancel_on: ["inspection.canceled", "inspection.rescheduled"],
        workflow_type: None,
        workflow_id: None,
        tenant_recipient: true,
    },
    Kind {
        source: "leasing",
        detail_type: "lease.expiring",
        en: "Hi {{ detail.first_name }}, your lease at {{ detail.property.name }} ends {{ detail.lease_end }} ({{ detail.days_left }} days).{% if detail.renewal_offer %} Renew now at {{ detail.renewal_offer }} per month.{% endif %} Reply RENEW to talk to us.",
        es: Some("Hola {{ detail.first_name }}, su contrato en {{ detail.property.name }} termina el {{ detail.lease_end }} ({{ detail.days_left }} días).{% if detail.renewal_offer %} Renueve ahora por {{ detail.renewal_offer }} al mes.{% endif %} Responda RENOVAR."),
        default: None,
        numeric: "days_left",
        dedupe: "lease-{{ detail.lease_id }}-expiring-{{ detail.days_left }}",
        cancel_on: ["lease.renewed", "notice.given"],
        workflow_type: Some("renewals"),
        workflow_id: Some("{{ detail.lease_id }}"),
        tenant_recipient: true,
    },
    Kind {
        source: "leasing",
        detail_type: "showing.scheduled",
        en: "Hi {{ detail.first_name }}, your tour of {{ detail.property.name }} unit {{ detail.property.unit }} is confirmed for {{ detail.showing_time }}.{% if detail.self_guided %} Your door code will arrive 15 minutes before.{% else %} {{ detail.agent }} will meet you there.{% endif %}",
        es: Some("Hola {{ detail.first_name }}, su visita a {{ detail.property.name }} unidad {{ detail.property.unit }} está confirmada para {{ detail.showing_time }}.{% if detail.self_guided %} Recibirá el código 15 minutos antes.{% else %} {{ detail.agent }} le recibirá allí.{% endif %}"),
        default: None,
        numeric: "party_size",
        dedupe: "showing-{{ detail.showing_id }}",
        cancel_on: ["showing.canceled", ""],
        workflow_type: None,
        workflow_id: Some("{{ detail.prospect_id }}"),
        tenant_recipient: false,
    },
    Kind {
        source: "leasing",
        detail_type: "application.approved",
        en: "Congratulations {{ detail.first_name }}! Your application for {{ detail.property.name }} is approved. Move-in: {{ detail.move_in_date }}, deposit {{ detail.deposit }}.{% if detail.cosigner_required %} We still need your co-signer's form.{% endif %}",
        es: Some("¡Felicidades {{ detail.first_name }}! Su solicitud para {{ detail.property.name }} fue aprobada. Mudanza: {{ detail.move_in_date }}, depósito {{ detail.deposit }}.{% if detail.cosigner_required %} Aún necesitamos el formulario de su codeudor.{% endif %}"),
        default: None,
        numeric: "score",
        dedupe: "application-{{ detail.application_id }}",
        cancel_on: ["application.withdrawn", ""],
        workflow_type: Some("leasing"),
        workflow_id: Some("{{ detail.application_id }}"),
        tenant_recipient: false,
    },
    Kind {
        source: "parley",
        detail_type: "message.failed",
        en: "Delivery to {{ detail.to }} failed ({{ detail.error_code }}) for message {{ detail.message_id }} of rule {{ detail.cause.rule_id }}.{% if detail.retryable %} It will be retried.{% endif %}",
        es: None,
        default: None,
        numeric: "error_code",
        dedupe: "failed-{{ detail.message_id }}",
        cancel_on: ["", ""],
        workflow_type: None,
        workflow_id: None,
        tenant_recipient: false,
    },
    Kind {
        source: "parley",
        detail_type: "reply.received",
        en: "New reply from {{ detail.from }} in conversation {{ detail.conversation_id }}: {{ detail.body }}{% if detail.keyword %} (keyword {{ detail.keyword }}){% endif %}",
        es: None,
        default: None,
        numeric: "segments",
        dedupe: "reply-{{ detail.message_id }}",
        cancel_on: ["", ""],
        workflow_type: Some("inbox"),
        workflow_id: Some("{{ detail.conversation_id }}"),
        tenant_recipient: false,
    },
];

fn templates(en: &str, es: Option<&str>, default: Option<&str>) -> Value {
    let mut texts = json!({ "en": en });
    if let Some(es) = es {
        texts["es"] = json!(es);
    }
    if let Some(default) = default {
        texts["default"] = json!(default);
    }
    texts
}

fn recipient(tenant: bool) -> Value {
    if tenant {
        json!({"tenant_id": "$.detail.tenant_id"})
    } else {
        json!({"phone": "$.detail.phone"})
    }
}

/// A `cancel_on` pattern: the same source, another detail-type, and (every other one) a
/// detail filter.
fn cancel(source: &str, detail_type: &str, i: usize) -> Value {
    if i % 2 == 0 {
        json!({"source": [source], "detail-type": [detail_type]})
    } else {
        json!({"source": [source], "detail-type": [detail_type], "detail": {"status": [{"anything-but": ["test", "void"]}]}})
    }
}

/// The three rules that match the event, and the overdue rules that share its source and
/// detail-type but not its detail.
fn overdue_rules() -> Vec<Value> {
    const EN: &str = "Hi {{ detail.first_name }}, invoice {{ detail.invoice_id }} is {{ detail.days_overdue }} days overdue. Balance due: {{ detail.amount }}.{% if detail.late_fee %} A late fee of {{ detail.late_fee }} has been added.{% endif %} Pay at https://pay.example.com or reply HELP for options.";
    const ES: &str = "Hola {{ detail.first_name }}, la factura {{ detail.invoice_id }} tiene {{ detail.days_overdue }} días de atraso. Saldo pendiente: {{ detail.amount }}.{% if detail.late_fee %} Se agregó un cargo por mora de {{ detail.late_fee }}.{% endif %} Pague en https://pay.example.com o responda AYUDA.";
    const DEFAULT: &str =
        "Invoice {{ detail.invoice_id }} is overdue: {{ detail.amount }} due since {{ detail.due_date }}.";
    let overdue = |name: &str, detail: Value| {
        json!({
            "name": name,
            "match": {"source": ["billing"], "detail-type": ["invoice.overdue"], "detail": detail},
            "recipient": {"tenant_id": "$.detail.tenant_id"},
            "template": templates(EN, Some(ES), Some(DEFAULT)),
            "timing": {"at": "$.detail.due_date", "offset": "P1D", "local_time": "10:00"},
            "not_after": "P2D",
            "dedupe": "invoice-{{ detail.invoice_id }}-overdue",
            "cancel_on": [cancel("billing", "payment.received", 0), cancel("billing", "invoice.voided", 1)],
            "workflow_type": "collections",
            "workflow_id": "{{ detail.invoice_id }}",
        })
    };
    let mut rules = vec![
        // Matches: overdue and not settled.
        overdue(
            "Invoice overdue reminder",
            json!({"status": [{"anything-but": ["paid", "void", "disputed"]}], "amount_cents": [{"numeric": [">", 0]}]}),
        ),
        // Matches: a second notice for 7 to 29 days, to the number in the event; no Spanish
        // text, so the Spanish-speaking tenant gets `default`.
        json!({
            "name": "Overdue 7-29 days: second notice",
            "match": {"source": ["billing"], "detail-type": ["invoice.overdue"], "detail": {
                "days_overdue": [{"numeric": [">=", 7, "<", 30]}],
                "phone": [{"exists": true}],
                "currency": ["USD"],
            }},
            "recipient": {"phone": "$.detail.phone"},
            "template": templates(
                "Second notice for {{ detail.property.name }} unit {{ detail.property.unit }}: invoice {{ detail.invoice_id }} ({{ detail.amount }}) is {{ detail.days_overdue }} days past due.{% if detail.days_overdue >= 14 %} Your account may be referred to collections.{% endif %} Reply PLAN to set up a payment plan.",
                None,
                Some("Second notice: invoice {{ detail.invoice_id }} ({{ detail.amount }}) is {{ detail.days_overdue }} days past due at {{ detail.property.name }}.{% if detail.late_fee %} Late fee: {{ detail.late_fee }}.{% endif %} Reply PLAN for a payment plan."),
            ),
            "timing": {"delay": "PT2H"},
            "dedupe": "second-notice-{{ detail.invoice_id }}",
            "cancel_on": [cancel("billing", "payment.received", 0)],
            "workflow_id": "{{ detail.tenant_id }}-{{ detail.invoice_id }}",
        }),
        // Matches: the Maple Court portfolio's own notice (property ids P-2…).
        json!({
            "name": "Maple Court: overdue notice from the property manager",
            "match": {"source": ["billing"], "detail-type": ["invoice.overdue"], "detail": {
                "property": {"id": [{"prefix": "P-2"}]},
                "portfolio": ["bay-area", "peninsula"],
            }},
            "recipient": {"tenant_id": "$.detail.tenant_id"},
            "template": templates(
                "{{ detail.property.name }} office: {{ detail.first_name }}, we have not received {{ detail.amount }} for unit {{ detail.property.unit }} (invoice {{ detail.invoice_id }}).{% if detail.days_overdue > 10 %} Please call us today at (415) 555-0100.{% else %} Please pay or call us at (415) 555-0100.{% endif %}",
                Some("Oficina de {{ detail.property.name }}: {{ detail.first_name }}, no hemos recibido {{ detail.amount }} de la unidad {{ detail.property.unit }} (factura {{ detail.invoice_id }}).{% if detail.days_overdue > 10 %} Llámenos hoy al (415) 555-0100.{% else %} Pague o llámenos al (415) 555-0100.{% endif %}"),
                None,
            ),
            "dedupe": "{{ detail.property.id }}-{{ detail.invoice_id }}",
            "workflow_type": "property-office",
            "workflow_id": "{{ detail.property.id }}",
        }),
    ];
    // Do not match: the same source and detail-type, another detail.
    let misses = [
        json!({"days_overdue": [{"numeric": [">=", 30, "<", 60]}]}),
        json!({"days_overdue": [{"numeric": [">=", 60]}]}),
        json!({"days_overdue": [{"numeric": ["<", 3]}]}),
        json!({"status": ["disputed"]}),
        json!({"currency": [{"anything-but": ["USD"]}]}),
        json!({"autopay_enrolled": [true]}),
        json!({"amount_cents": [{"numeric": ["<", 10000]}]}),
        json!({"amount_cents": [{"numeric": [">=", 500000]}]}),
        json!({"payment_plan": [{"exists": true}]}),
        json!({"portfolio": ["sacramento", "fresno"]}),
        json!({"tenant_id": [{"prefix": "t-9"}]}),
        json!({"property": {"id": [{"prefix": "P-3"}]}}),
        json!({"property": {"id": [{"prefix": "P-4"}]}, "days_overdue": [{"numeric": [">", 5]}]}),
        json!({"property": {"id": [{"prefix": "P-5"}]}}),
        json!({"property": {"id": [{"prefix": "P-6"}]}, "status": [{"anything-but": ["paid"]}]}),
        json!({"property": {"id": ["P-70", "P-71", "P-72"]}}),
        json!({"status": ["overdue"], "phone": [{"exists": false}]}),
    ];
    for (i, detail) in misses.into_iter().enumerate() {
        rules.push(overdue(&format!("Overdue variant {}", i + 1), detail));
    }
    rules
}

/// A rule of `kind`, varied by `i`: its detail filter, its `cancel_on` count (0–2), timing.
fn kind_rule(kind: &Kind, i: usize) -> Value {
    let detail = match i % 5 {
        0 => None,
        1 => Some(json!({"property": {"id": [{"prefix": format!("P-{}", 1 + i % 9)}]}})),
        2 => Some(json!({kind.numeric: [{"numeric": [">=", (i % 7) * 10, "<", 1000 + i]}]})),
        3 => Some(
            json!({"tenant_id": [{"exists": true}], "status": [{"anything-but": ["test", "void"]}]}),
        ),
        _ => Some(
            json!({"portfolio": ["bay-area", "peninsula", "south-bay"], kind.numeric: [{"numeric": [">", 0]}]}),
        ),
    };
    let mut pattern = json!({"source": [kind.source], "detail-type": [kind.detail_type]});
    if let Some(detail) = detail {
        pattern["detail"] = detail;
    }
    let cancel_on: Vec<Value> = kind
        .cancel_on
        .iter()
        .filter(|t| !t.is_empty())
        .take(i % 3)
        .enumerate()
        .map(|(j, t)| cancel(kind.source, t, i + j))
        .collect();
    let timing = match i % 3 {
        0 => json!("now"),
        1 => json!({"delay": format!("PT{}M", 15 * (1 + i % 4))}),
        _ => json!({"delay": "P1D"}),
    };
    let mut rule = json!({
        "name": format!("{} {} #{i}", kind.source, kind.detail_type),
        "match": pattern,
        "recipient": recipient(kind.tenant_recipient),
        "template": templates(kind.en, kind.es, kind.default),
        "timing": timing,
        "dedupe": kind.dedupe,
        "cancel_on": cancel_on,
    });
    if let Some(t) = kind.workflow_type {
        rule["workflow_type"] = json!(t);
    }
    if let Some(t) = kind.workflow_id {
        rule["workflow_id"] = json!(t);
    }
    if i % 4 == 0 {
        rule["cap"] = json!({"max": 3, "per": "P7D"});
    }
    rule
}

/// 100 rules: the overdue ones first, then the kinds in turn.
fn rules_json() -> Vec<Value> {
    let mut rules = overdue_rules();
    let mut i = 0;
    while rules.len() < 100 {
        rules.push(kind_rule(&KINDS[i % KINDS.len()], i));
        i += 1;
    }
    rules
}

// ---------------------------------------------------------------------------------------------
// The router's pure work for one event
// ---------------------------------------------------------------------------------------------

/// What one event produced: per matching rule its dedupe key, body and workflow texts; per
/// canceling rule its dedupe key.
#[derive(Debug, Default, PartialEq)]
struct Routed {
    fired: Vec<Fired>,
    canceled: Vec<String>,
}

#[derive(Debug, PartialEq)]
struct Fired {
    dedupe_key: String,
    language: &'static str,
    body: String,
    workflow_type: Option<String>,
    workflow_id: Option<String>,
}

/// The tenant `Engine::evaluate` knows when it renders the dedupe key: the recipient's when
/// the rule's recipient is a tenant, none for a phone number (its tenant is read later).
fn dedupe_tenant(spec: &RuleSpec) -> Option<&'static str> {
    match spec.recipient {
        Recipient::TenantId(_) => Some(TENANT),
        Recipient::Phone(_) => None,
    }
}

/// Matching alone: every rule's `match` and `cancel_on`, as `EventRouter::route` tries them.
fn matching(rules: &[RuleSpec], event: &Event) -> (usize, usize) {
    let (mut fired, mut canceled) = (0, 0);
    for rule in rules {
        if rule.pattern.matches(&event.raw) {
            fired += 1;
        }
        if rule.cancel_on.iter().any(|p| p.matches(&event.raw)) {
            canceled += 1;
        }
    }
    (fired, canceled)
}

/// As `Engine::evaluate` and `Engine::cancel` rendered before this benchmark: a JSON context
/// per use, converted by every `render`.
fn per_render(rules: &[RuleSpec], event: &Event) -> Routed {
    let mut routed = Routed::default();
    for rule in rules {
        if rule.pattern.matches(&event.raw) {
            let dedupe_key = match &rule.dedupe {
                None => event.id.clone(),
                Some(text) => text
                    .render(&event.context(dedupe_tenant(rule)))
                    .unwrap_or_else(|_| event.id.clone()),
            };
            let context = event.context(Some(TENANT));
            let choice = rule.template.choose(Some(TENANT_LANGUAGE), None);
            let body = rule
                .template
                .render(&choice, &context)
                .expect("a body")
                .body;
            let text = |t: &Option<Text>| t.as_ref().map(|t| t.render(&context).expect("a text"));
            routed.fired.push(Fired {
                dedupe_key,
                language: choice.key,
                body,
                workflow_type: text(&rule.workflow_type),
                workflow_id: text(&rule.workflow_id),
            });
        }
        if rule.cancel_on.iter().any(|p| p.matches(&event.raw)) {
            let key = match &rule.dedupe {
                Some(text) => text.render(&event.context(None)).expect("a key"),
                None => event.id.clone(),
            };
            routed.canceled.push(key);
        }
    }
    routed
}

/// One converted context per rule evaluated (two when the dedupe key's tenant is not the
/// body's), as `Engine::evaluate` renders since this benchmark.
fn per_evaluation(rules: &[RuleSpec], event: &Event) -> Routed {
    let mut routed = Routed::default();
    for rule in rules {
        if rule.pattern.matches(&event.raw) {
            let early_tenant = dedupe_tenant(rule);
            let mut early = None;
            let dedupe_key = match &rule.dedupe {
                None => event.id.clone(),
                Some(text) => {
                    let context = early
                        .insert(Context::from_json(&event.context(early_tenant)))
                        .clone();
                    text.render_with(&context)
                        .unwrap_or_else(|_| event.id.clone())
                }
            };
            let context = match early {
                Some(context) if early_tenant == Some(TENANT) => context,
                _ => Context::from_json(&event.context(Some(TENANT))),
            };
            let choice = rule.template.choose(Some(TENANT_LANGUAGE), None);
            let body = rule
                .template
                .render_with(&choice, &context)
                .expect("a body")
                .body;
            let text =
                |t: &Option<Text>| t.as_ref().map(|t| t.render_with(&context).expect("a text"));
            routed.fired.push(Fired {
                dedupe_key,
                language: choice.key,
                body,
                workflow_type: text(&rule.workflow_type),
                workflow_id: text(&rule.workflow_id),
            });
        }
        if rule.cancel_on.iter().any(|p| p.matches(&event.raw)) {
            let key = match &rule.dedupe {
                Some(text) => text
                    .render_with(&Context::from_json(&event.context(None)))
                    .expect("a key"),
                None => event.id.clone(),
            };
            routed.canceled.push(key);
        }
    }
    routed
}

/// As the engine renders now: `Event::template_context` (one conversion per event, cached on
/// it; the tenant an overlay).
fn engine_now(rules: &[RuleSpec], event: &Event) -> Routed {
    let mut routed = Routed::default();
    for rule in rules {
        if rule.pattern.matches(&event.raw) {
            let dedupe_key = match &rule.dedupe {
                None => event.id.clone(),
                Some(text) => text
                    .render_with(&event.template_context(dedupe_tenant(rule)))
                    .unwrap_or_else(|_| event.id.clone()),
            };
            let context = event.template_context(Some(TENANT));
            let choice = rule.template.choose(Some(TENANT_LANGUAGE), None);
            let body = rule
                .template
                .render_with(&choice, &context)
                .expect("a body")
                .body;
            let text =
                |t: &Option<Text>| t.as_ref().map(|t| t.render_with(&context).expect("a text"));
            routed.fired.push(Fired {
                dedupe_key,
                language: choice.key,
                body,
                workflow_type: text(&rule.workflow_type),
                workflow_id: text(&rule.workflow_id),
            });
        }
        if rule.cancel_on.iter().any(|p| p.matches(&event.raw)) {
            let key = match &rule.dedupe {
                Some(text) => text
                    .render_with(&event.template_context(None))
                    .expect("a key"),
                None => event.id.clone(),
            };
            routed.canceled.push(key);
        }
    }
    routed
}

/// Each context (with the tenant, without one) converted at most once per event, shared by
/// every rule.
fn per_event(rules: &[RuleSpec], event: &Event) -> Routed {
    let mut with_tenant: Option<Context> = None;
    let mut without: Option<Context> = None;
    let mut context = |tenant: Option<&str>| -> Context {
        let slot = if tenant.is_some() {
            &mut with_tenant
        } else {
            &mut without
        };
        slot.get_or_insert_with(|| Context::from_json(&event.context(tenant)))
            .clone()
    };
    let mut routed = Routed::default();
    for rule in rules {
        if rule.pattern.matches(&event.raw) {
            let dedupe_key = match &rule.dedupe {
                None => event.id.clone(),
                Some(text) => text
                    .render_with(&context(dedupe_tenant(rule)))
                    .unwrap_or_else(|_| event.id.clone()),
            };
            let context = context(Some(TENANT));
            let choice = rule.template.choose(Some(TENANT_LANGUAGE), None);
            let body = rule
                .template
                .render_with(&choice, &context)
                .expect("a body")
                .body;
            let text =
                |t: &Option<Text>| t.as_ref().map(|t| t.render_with(&context).expect("a text"));
            routed.fired.push(Fired {
                dedupe_key,
                language: choice.key,
                body,
                workflow_type: text(&rule.workflow_type),
                workflow_id: text(&rule.workflow_id),
            });
        }
        if rule.cancel_on.iter().any(|p| p.matches(&event.raw)) {
            let key = match &rule.dedupe {
                Some(text) => text.render_with(&context(None)).expect("a key"),
                None => event.id.clone(),
            };
            routed.canceled.push(key);
        }
    }
    routed
}

// ---------------------------------------------------------------------------------------------
// Timing and the report
// ---------------------------------------------------------------------------------------------

fn header(first: &str) {
    eprintln!("| {first} | CPU mean µs | wall mean µs | p50 µs | p99 µs | max µs | n |");
    eprintln!("|---|---:|---:|---:|---:|---:|---:|");
}

fn row(name: &str, (s, cpu): &(Summary, Duration)) {
    eprintln!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        micros(*cpu),
        micros(s.mean),
        micros(s.p50),
        micros(s.p99),
        micros(s.max),
        s.n
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let n = env_number("BENCH_ITERATIONS", 100_000);
    let warmup = env_number("BENCH_WARMUP", 10_000);

    let sources = rules_json();
    assert_eq!(sources.len(), 100);
    let rules: Vec<RuleSpec> = sources
        .iter()
        .map(|r| {
            let raw = serde_json::to_vec(r).expect("JSON");
            rule::validate(&raw).unwrap_or_else(|e| panic!("{}: {e:?}", r["name"]))
        })
        .collect();
    let rules: Vec<RuleSpec> = rules.into_iter().filter(|r| r.enabled).collect();
    let parse = || {
        let raw: Value = serde_json::from_str(SQS_BODY).expect("JSON");
        Event::from_json(raw).expect("an event")
    };
    let event = parse();
    assert!(!event.has_cause());

    // What the event does to these rules, checked once (and the three variants agree).
    let (fired, canceled) = matching(&rules, &event);
    assert_eq!((fired, canceled), (MATCHING, CANCELING));
    let routed = per_render(&rules, &event);
    assert_eq!(routed, per_evaluation(&rules, &event));
    assert_eq!(routed, per_event(&rules, &event));
    assert_eq!(routed, engine_now(&rules, &parse()));
    assert!(routed.canceled.iter().all(|k| k == "promise-INV-1001"));
    let same_type = rules
        .iter()
        .filter(|r| {
            r.pattern.as_json()["source"] == json!(["billing"])
                && r.pattern.as_json()["detail-type"] == json!(["invoice.overdue"])
        })
        .count();
    let cancel_patterns: usize = rules.iter().map(|r| r.cancel_on.len()).sum();
    let with_cancel = rules.iter().filter(|r| !r.cancel_on.is_empty()).count();
    let sources_count = |s: &str| {
        rules
            .iter()
            .filter(|r| r.pattern.as_json()["source"] == json!([s]))
            .count()
    };
    let same_source = sources_count(&event.source);

    eprintln!("# Event rules: matching and rendering, per event, 100 rules loaded");
    eprintln!();
    eprintln!("- machine: {}", common::machine());
    eprintln!("- load average at the start: {}", common::load_average());
    eprintln!("- iterations: {n} timed per row (and {n} more for the CPU mean), after {warmup} warm-up calls");
    eprintln!(
        "- rules: {} enabled, built with `rule::validate`; sources billing {}, maintenance {}, leasing {}, parley {}; {same_source} share the event's source, {same_type} its source and detail-type; {cancel_patterns} `cancel_on` patterns on {with_cancel} rules",
        rules.len(),
        sources_count("billing"),
        sources_count("maintenance"),
        sources_count("leasing"),
        sources_count("parley"),
    );
    eprintln!(
        "- event ({} bytes, the SQS body): `{}` from `{}`; {fired} rules match it, {canceled} cancels on it",
        SQS_BODY.len(),
        event.detail_type,
        event.source
    );
    eprintln!("- recipient: tenant {TENANT}, language preference {TENANT_LANGUAGE:?}");
    for (f, spec) in routed
        .fired
        .iter()
        .zip(rules.iter().filter(|r| r.pattern.matches(&event.raw)))
    {
        eprintln!(
            "- fired `{}`: key `{}`, text `{}` ({} chars), workflow_type {:?}, workflow_id {:?}",
            spec.name,
            f.dedupe_key,
            f.language,
            f.body.chars().count(),
            f.workflow_type,
            f.workflow_id
        );
        eprintln!("  - body: {}", f.body);
    }
    eprintln!("- canceled: key {:?}", routed.canceled);
    eprintln!();

    let matched: Vec<&RuleSpec> = rules
        .iter()
        .filter(|r| r.pattern.matches(&event.raw))
        .collect();
    let first = matched[0];
    let dedupe = first.dedupe.as_ref().expect("a dedupe text");
    let choice = first.template.choose(Some(TENANT_LANGUAGE), None);
    let json_context = event.context(Some(TENANT));
    let context = Context::from_json(&json_context);

    let timer = time(warmup, n, || Instant::now().elapsed());
    let parse_event = time(warmup, n, parse);
    let build_json = time(warmup, n, || event.context(Some(TENANT)));
    let convert = time(warmup, n, || Context::from_json(&json_context));
    let one_match = time(warmup, n, || first.pattern.matches(&event.raw));
    let dedupe_render = time(warmup, n, || dedupe.render(&json_context));
    let dedupe_render_with = time(warmup, n, || dedupe.render_with(&context));
    let choose = time(warmup, n, || {
        first.template.choose(Some(TENANT_LANGUAGE), None)
    });
    let body_render = time(warmup, n, || first.template.render(&choice, &json_context));
    let body_render_with = time(warmup, n, || first.template.render_with(&choice, &context));
    let matching_only = time(warmup, n, || matching(&rules, &event));
    let match_only = time(warmup, n, || {
        rules
            .iter()
            .filter(|r| r.pattern.matches(&event.raw))
            .count()
    });
    let full_render = time(warmup, n, || per_render(&rules, &event));
    let full_evaluation = time(warmup, n, || per_evaluation(&rules, &event));
    let full_event = time(warmup, n, || per_event(&rules, &event));
    let full_now = time(warmup, n, || engine_now(&rules, &parse()));
    // The target excludes reading the SQS body; the parse's own mean is subtracted.
    let now_cpu = full_now.1.saturating_sub(parse_event.1);
    let now_p50 = full_now.0.p50.saturating_sub(parse_event.0.p50);

    header("piece (one call each)");
    row("(timer overhead: `Instant::now` + `elapsed`)", &timer);
    row(
        "read the SQS body: `serde_json::from_str` + `Event::from_json` (not in the target)",
        &parse_event,
    );
    row(
        "`event.context(Some(tenant))`: the JSON context",
        &build_json,
    );
    row(
        "`Context::from_json`: that JSON converted for templates",
        &convert,
    );
    row("`Pattern::matches`, one matching rule", &one_match);
    row(
        "dedupe `Text::render` (JSON context: converts)",
        &dedupe_render,
    );
    row(
        "dedupe `Text::render_with` (converted context)",
        &dedupe_render_with,
    );
    row("`Templates::choose` (tenant Spanish)", &choose);
    row(
        &format!(
            "body `Templates::render` (`{}`, JSON context: converts)",
            choice.key
        ),
        &body_render,
    );
    row(
        &format!(
            "body `Templates::render_with` (`{}`, converted context)",
            choice.key
        ),
        &body_render_with,
    );
    eprintln!();
    header("per event, 100 rules");
    row("`match` only, every rule", &match_only);
    row(
        "matching alone: every `match` and `cancel_on`",
        &matching_only,
    );
    row(
        "(a) matching + rendering, context per render (`evaluate` before this benchmark)",
        &full_render,
    );
    row(
        "(e) matching + rendering, context once per evaluation",
        &full_evaluation,
    );
    row(
        "(b) matching + rendering, context once per event",
        &full_event,
    );
    row(
        "(c) the engine now, with reading the SQS body (`Event::template_context`)",
        &full_now,
    );
    eprintln!(
        "| (c) the engine now, matching + rendering (the above − reading the body) | {} | | {} | | | |",
        micros(now_cpu),
        micros(now_p50)
    );
    eprintln!();
    eprintln!("| rendering alone, per event (full − matching) | CPU mean µs | p50 µs |");
    eprintln!("|---|---:|---:|");
    let variants = [
        ("(a) per render", &full_render),
        ("(e) per evaluation", &full_evaluation),
        ("(b) per event", &full_event),
    ];
    for (name, full) in variants {
        eprintln!(
            "| {fired} fired + {canceled} canceled, {name} | {:.2} | {:.2} |",
            us(full.1) - us(matching_only.1),
            us(full.0.p50) - us(matching_only.0.p50),
        );
    }
    eprintln!();
    let verdict = |full: &(Summary, Duration)| if us(full.1) <= 50.0 { "PASS" } else { "FAIL" };
    eprintln!(
        "target ≤ 50 µs CPU per event, matching + rendering, 100 rules: {} as the engine renders now ((c): CPU mean {} µs, p50 {} µs; with reading the body {} µs); (e) per evaluation {} ({} µs); (a) per render {} ({} µs), (b) per event {} ({} µs)",
        if us(now_cpu) <= 50.0 { "PASS" } else { "FAIL" },
        micros(now_cpu),
        micros(now_p50),
        micros(full_now.1),
        verdict(&full_evaluation),
        micros(full_evaluation.1),
        verdict(&full_render),
        micros(full_render.1),
        verdict(&full_event),
        micros(full_event.1),
    );
    eprintln!("load average at the end: {}", common::load_average());
}
