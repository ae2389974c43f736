//! Rule templates, rendered in a sandbox.
//!
//! Rule authors are operators, not attackers, but a typo'd loop or a template that prints an
//! event's whole payload must not stall the event router or text a tenant a novel. So each
//! compiled text lives in its own [`minijinja::Environment`] with:
//!
//! * no loader: `include`/`import`/`extends` can only reach the text itself, and that
//!   recursion runs out of fuel;
//! * [`UndefinedBehavior::Strict`]: `{{ detail.amout }}` fails instead of texting
//!   "Your balance is ." to a tenant;
//! * no auto-escaping: SMS is plain text, `&` must stay `&`;
//! * [`FUEL`] per render, bounding time and memory;
//! * bounded input (4 KiB per text) and output (10 segments, [`MAX_BODY_CHARS`]).
//!
//! Templates are parsed and compiled once, when the rule is loaded; a render is a map lookup
//! plus the VM run, so 100 loaded rules cost nothing until one matches.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::language::Language;
use crate::segments::{self, Segments};
use crate::send::request::MAX_BODY_CHARS;

/// Instructions (plus roughly one per 64 bytes of data created) one render may spend.
///
/// A realistic reminder (five fields, an `if`, a loop over three line items) spends about 70
/// (`fuel_spent_by_a_realistic_template` holds it under 500), so 5,000 leaves room for
/// templates seventy times busier, such as a loop over a hundred items. Fuel is also the only
/// bound on time and memory while a template runs: about 64 bytes per unit is ~320 KB here,
/// and `range(100000)` fails after ~0.5 ms even unoptimized. 20,000 would buy nothing a
/// message needs and quadruple what a broken rule costs on every event it matches.
pub const FUEL: u64 = 5_000;

/// Per text. A 10-segment SMS is at most 1,600 characters; twice that in template source is
/// generous for logic and whitespace, and bounds what a rule store item holds.
pub const MAX_SOURCE_BYTES: usize = 4096;

/// Longer messages are split by carriers into this many parts and billed for each; more is
/// almost surely a template printing something it should not.
pub const MAX_SEGMENTS: u32 = 10;

/// The name each compiled text has inside its environment; only visible to a template that
/// includes itself.
const NAME: &str = "text";

/// One compiled template (dedupe key, workflow_type, workflow_id), and the building block of
/// [`Templates`].
#[derive(Clone)]
pub struct Text {
    source: String,
    env: Arc<Environment<'static>>,
}

/// The render context, converted once: [`Text::render_with`] and
/// [`Templates::render_with`] take it so a rule that renders a body, a dedupe key and
/// workflow ids from one event converts the event once.
#[derive(Debug, Clone)]
pub struct Context(minijinja::Value);

impl Context {
    pub fn from_json(context: &serde_json::Value) -> Context {
        Context(minijinja::Value::from(Serde(context)))
    }

    /// What templates see of an event (the whole EventBridge envelope): `event`, `detail`,
    /// and `tenant` (null here, see [`Context::with_tenant`]). Converting the event is the
    /// costly part of rendering, so it is done once per event and shared by every rule.
    pub fn of_event(event: &serde_json::Value) -> Context {
        #[derive(serde::Serialize)]
        struct View<'a> {
            event: &'a serde_json::Value,
            detail: &'a serde_json::Value,
            tenant: Option<()>,
        }
        let view = View {
            event,
            detail: &event["detail"],
            tenant: None,
        };
        Context(minijinja::Value::from(Serde(view)))
    }

    /// This context with `tenant` as `{"id": …}`: an overlay, the event is not converted again.
    pub fn with_tenant(&self, tenant_id: Option<&str>) -> Context {
        match tenant_id {
            None => self.clone(),
            Some(id) => Context(minijinja::context! {
                tenant => minijinja::context! { id => id },
                ..self.0.clone()
            }),
        }
    }
}

impl Text {
    pub fn compile(source: &str) -> Result<Text, TemplateError> {
        compile(source, None)
    }

    /// The rendered text with surrounding whitespace trimmed (a stray newline from a
    /// `{% if %}` is never part of a key or an SMS). A blank result is [`RenderError::Empty`]:
    /// a blank dedupe key would merge every event into one. More than [`MAX_BODY_CHARS`]
    /// characters is [`RenderError::TooLong`], for keys and ids as for bodies.
    pub fn render(&self, context: &serde_json::Value) -> Result<String, RenderError> {
        self.render_with(&Context::from_json(context))
    }

    /// [`Text::render`] with a context converted beforehand.
    pub fn render_with(&self, context: &Context) -> Result<String, RenderError> {
        let template = self.env.get_template(NAME).map_err(|e| failure(&e))?;
        let output = template
            .render(context.0.clone())
            .map_err(|e| failure(&e))?;
        let text = trimmed(output);
        if text.is_empty() {
            return Err(RenderError::Empty);
        }
        if text.chars().count() > MAX_BODY_CHARS {
            return Err(RenderError::TooLong {
                segments: segments::count(&text).count,
            });
        }
        Ok(text)
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

fn trimmed(output: String) -> String {
    let text = output.trim();
    if text.len() == output.len() {
        output
    } else {
        text.to_owned()
    }
}

fn compile(source: &str, language: Option<&str>) -> Result<Text, TemplateError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(TemplateError::whole(
            language,
            format!(
                "is {} bytes; at most {MAX_SOURCE_BYTES} are allowed",
                source.len()
            ),
        ));
    }
    let mut env = sandbox();
    env.add_template_owned(NAME, source.to_owned())
        .map_err(|e| TemplateError::from_minijinja(language, source, &e))?;
    Ok(Text {
        source: source.to_owned(),
        env: Arc::new(env),
    })
}

/// The builtin filters, tests and functions are kept: they are pure and fueled.
fn sandbox() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    // Not for the debug dump (never shown: it holds the event's values) but because only in
    // debug mode does an undefined error name the expression (`detail.amout`). The cost is
    // paid only when a render fails.
    env.set_debug(true);
    env.add_filter("format", guarded_format);
    env
}

/// minijinja's printf-style `format`, guarded. Its parser slices the format string by bytes
/// and panics on some malformed conversion specs — a multi-byte character inside a `%(key)`
/// mapping key, found by `make fuzz` against minijinja 3.1.0 — and a template is user input.
/// Only positional specs made of ASCII (`%s`, `%d`, `%5.2f`, `%%`…) reach it. No
/// `catch_unwind` stands behind the check: what ships aborts on a panic (`panic = "abort"`,
/// docs/architecture.md, "What ships"), so the check must be the whole guard, and the
/// `template` fuzz target holds it to that.
fn guarded_format(
    state: &mut minijinja::State,
    format_str: &minijinja::Value,
    args: minijinja::value::Rest<minijinja::value::ValueOrKwargs>,
) -> Result<minijinja::Value, minijinja::Error> {
    if let Some(why) = format_str
        .as_str()
        .and_then(|text| check_printf(text).err())
    {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("format: {why}"),
        ));
    }
    minijinja::filters::format(state, format_str, args)
}

/// Positional printf specs only: `%`, ASCII flags, a width and a precision of at most two
/// digits each, an ASCII letter. minijinja hands width and precision to Rust's formatting,
/// which panics on some large precisions (`%.90002g`: `ndigits > 0` in `core::num::flt2dec`,
/// found by `make fuzz`), and a nine-digit width would be a nine-digit-long string; `*` (taken
/// from the arguments) is refused for the same reason.
fn check_printf(text: &str) -> Result<(), &'static str> {
    const TOO_WIDE: &str = "a width or precision in a format string is at most two digits";
    let mut chars = text.chars().peekable();
    let digits = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        let mut count = 0;
        while chars.next_if(char::is_ascii_digit).is_some() {
            count += 1;
        }
        count
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        if chars.next_if_eq(&'%').is_some() {
            continue;
        }
        while chars.next_if(|c| "-+ #0".contains(*c)).is_some() {}
        if digits(&mut chars) > 2 {
            return Err(TOO_WIDE);
        }
        if chars.next_if_eq(&'.').is_some() && digits(&mut chars) > 2 {
            return Err(TOO_WIDE);
        }
        while chars.next_if(|c| "hlL".contains(*c)).is_some() {}
        match chars.next() {
            Some(c) if c.is_ascii_alphabetic() => {}
            Some('(') => return Err("%(name) specs are not supported; pass values in order"),
            _ => return Err("a % must be followed by a conversion such as %s, %d or %.2f"),
        }
    }
    Ok(())
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Text").field(&self.source).finish()
    }
}

/// Equal when the sources are: the compiled form is a function of the source.
impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.source == other.source
    }
}

impl Eq for Text {}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text, D::Error> {
        let source = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Text::compile(&source).map_err(serde::de::Error::custom)
    }
}

/// A key of [`Templates`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    En,
    Es,
    Pt,
    Default,
}

impl Key {
    const ALL: [Key; 4] = [Key::En, Key::Es, Key::Pt, Key::Default];

    fn as_str(self) -> &'static str {
        match self {
            Key::En => "en",
            Key::Es => "es",
            Key::Pt => "pt",
            Key::Default => "default",
        }
    }

    fn parse(s: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.as_str() == s)
    }

    fn for_language(language: Language) -> Option<Key> {
        match language {
            Language::En => Some(Key::En),
            Language::Es => Some(Key::Es),
            Language::Pt => Some(Key::Pt),
            Language::Unknown => None,
        }
    }

    fn language(self) -> Language {
        match self {
            Key::En => Language::En,
            Key::Es => Language::Es,
            Key::Pt => Language::Pt,
            Key::Default => Language::Unknown,
        }
    }
}

/// A message's text per language: keys `en`, `es`, `pt`, `default`; at least one of
/// `default` and `en`, so every recipient gets something.
#[derive(Clone, PartialEq, Eq)]
pub struct Templates {
    texts: BTreeMap<String, String>,
    compiled: BTreeMap<Key, Text>,
}

/// Which text [`Templates::choose`] picked, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// `en`, `es`, `pt` or `default`.
    pub key: &'static str,
    /// `Unknown` for the `default` text.
    pub language: Language,
    pub source: LanguageSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum LanguageSource {
    Tenant,
    Conversation,
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rendered {
    pub body: String,
    pub segments: Segments,
}

impl Templates {
    /// Compiles every text; the first failure is returned, naming its language.
    pub fn compile(texts: &BTreeMap<String, String>) -> Result<Templates, TemplateError> {
        let mut compiled = BTreeMap::new();
        for (key, source) in texts {
            let parsed = Key::parse(key).ok_or_else(|| {
                TemplateError::whole(
                    Some(key),
                    "unknown language; expected en, es, pt or default".into(),
                )
            })?;
            if source.trim().is_empty() {
                return Err(TemplateError::whole(Some(key), "is empty".into()));
            }
            compiled.insert(parsed, compile(source, Some(key))?);
        }
        if !compiled.contains_key(&Key::Default) && !compiled.contains_key(&Key::En) {
            return Err(TemplateError::whole(
                None,
                "needs a `default` or an `en` text, for recipients whose language has none".into(),
            ));
        }
        Ok(Templates {
            texts: texts.clone(),
            compiled,
        })
    }

    /// The language used: the tenant's preference if it has a text, else the
    /// conversation's, else `default` (else `en`). [`Language::Unknown`] never selects.
    pub fn choose(&self, tenant: Option<Language>, conversation: Option<Language>) -> Choice {
        let preferred = [
            (tenant, LanguageSource::Tenant),
            (conversation, LanguageSource::Conversation),
        ];
        for (language, source) in preferred {
            if let Some(key) = language
                .and_then(Key::for_language)
                .filter(|k| self.compiled.contains_key(k))
            {
                return choice(key, source);
            }
        }
        let fallback = if self.compiled.contains_key(&Key::Default) {
            Key::Default
        } else {
            Key::En
        };
        choice(fallback, LanguageSource::Default)
    }

    /// The chosen text rendered and measured: over [`MAX_SEGMENTS`] or [`MAX_BODY_CHARS`]
    /// is [`RenderError::TooLong`], blank is [`RenderError::Empty`].
    pub fn render(
        &self,
        choice: &Choice,
        context: &serde_json::Value,
    ) -> Result<Rendered, RenderError> {
        self.render_with(choice, &Context::from_json(context))
    }

    /// [`Templates::render`] with a context converted beforehand.
    pub fn render_with(&self, choice: &Choice, context: &Context) -> Result<Rendered, RenderError> {
        let text = Key::parse(choice.key)
            .and_then(|k| self.compiled.get(&k))
            .ok_or_else(|| RenderError::Failed(format!("no `{}` text", choice.key)))?;
        let body = text.render_with(context)?;
        let segments = segments::count(&body);
        if segments.count > MAX_SEGMENTS {
            return Err(RenderError::TooLong {
                segments: segments.count,
            });
        }
        Ok(Rendered { body, segments })
    }

    pub fn texts(&self) -> &BTreeMap<String, String> {
        &self.texts
    }
}

fn choice(key: Key, source: LanguageSource) -> Choice {
    Choice {
        key: key.as_str(),
        language: key.language(),
        source,
    }
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Templates").field(&self.texts).finish()
    }
}

impl Serialize for Templates {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.texts.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Templates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Templates, D::Error> {
        let texts = BTreeMap::<String, String>::deserialize(deserializer)?;
        Templates::compile(&texts).map_err(serde::de::Error::custom)
    }
}

/// A text that does not compile. `line` and `column` are 1-based, or 0 when the error is
/// about the text as a whole (its size, its language key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub struct TemplateError {
    pub language: Option<String>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl TemplateError {
    fn whole(language: Option<&str>, message: String) -> TemplateError {
        TemplateError {
            language: language.map(str::to_owned),
            line: 0,
            column: 0,
            message,
        }
    }

    /// The position comes from the error's byte range in `source` (the line alone when
    /// minijinja gives no range).
    fn from_minijinja(
        language: Option<&str>,
        source: &str,
        err: &minijinja::Error,
    ) -> TemplateError {
        let (line, column) = match err.range() {
            Some(range) => position(source, range.start),
            None => (err.line().unwrap_or(0), 0),
        };
        TemplateError {
            language: language.map(str::to_owned),
            line,
            column,
            message: err
                .detail()
                .map_or_else(|| err.kind().to_string(), str::to_owned),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// `template `en`, line 1, column 12: unexpected end of input`.
impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("template")?;
        if let Some(language) = &self.language {
            write!(f, " `{language}`")?;
        }
        if self.line > 0 {
            write!(f, ", line {}", self.line)?;
        }
        if self.column > 0 {
            write!(f, ", column {}", self.column)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// Undefined variable, fuel exhausted, type error… The message names the expression
    /// and line but never the event's values, so it can be logged and shown in previews.
    #[error("template failed: {0}")]
    Failed(String),
    /// Over [`MAX_SEGMENTS`] segments or [`MAX_BODY_CHARS`] characters.
    #[error("rendered text is too long ({segments} segments; at most {MAX_SEGMENTS} and {MAX_BODY_CHARS} characters)")]
    TooLong { segments: u32 },
    #[error("rendered text is empty")]
    Empty,
}

fn failure(err: &minijinja::Error) -> RenderError {
    let what = describe(innermost(err));
    RenderError::Failed(match err.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    })
}

/// A failure inside an include is reported by minijinja as "error in \"text\"" with the
/// real cause as its source; the cause is what the author needs.
fn innermost(err: &minijinja::Error) -> &minijinja::Error {
    let mut err = err;
    while let Some(cause) =
        std::error::Error::source(err).and_then(|cause| cause.downcast_ref::<minijinja::Error>())
    {
        err = cause;
    }
    err
}

fn describe(err: &minijinja::Error) -> String {
    match (err.kind(), err.detail()) {
        (ErrorKind::OutOfFuel, _) => {
            format!("the template does too much work (more than {FUEL} steps)")
        }
        // minijinja writes the operands of a failed calculation (overflow, division by
        // zero) into the detail: those are the event's values.
        (kind, Some(detail)) if detail.starts_with("unable to calculate") => {
            format!("{kind}: arithmetic overflow or division by zero")
        }
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_works_for_positional_specs_and_refuses_what_would_panic() {
        let ctx = serde_json::json!({"detail": {"amount": 12.5, "name": "Ana"}});
        let text = |src: &str| Text::compile(src).unwrap().render(&ctx);
        assert_eq!(
            text(r#"{{ "%s debe $%.2f (100%%)"|format(detail.name, detail.amount) }}"#).unwrap(),
            "Ana debe $12.50 (100%)"
        );
        assert_eq!(
            text(r#"{{ "Total: %5.1f €"|format(detail.amount) }}"#).unwrap(),
            "Total:  12.5 €"
        );
        // A multi-byte character in a %(key) spec made minijinja 3.1.0's parser panic.
        for bad in [
            "{{ \"%(\u{d04f1}x)s\"|format(1) }}",
            r#"{{ "%(a)s"|format(1) }}"#,
            r#"{{ "%é"|format(1) }}"#,
            // Rust's float formatting panicked on this precision (found by `make fuzz`).
            r#"{{ "%.90002g"|format(detail.amount) }}"#,
            r#"{{ "%123d"|format(1) }}"#,
            r#"{{ "%*d"|format(5, 1) }}"#,
        ] {
            assert!(
                matches!(text(bad), Err(RenderError::Failed(ref m)) if m.contains("format")),
                "{bad}: {:?}",
                text(bad)
            );
        }
        let found_by_fuzzing = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/seeds/template/regression-format-multibyte"
        ))
        .unwrap();
        crate::fuzzing::template(&found_by_fuzzing);
        let found_by_fuzzing = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/seeds/template/regression-format-precision"
        ))
        .unwrap();
        crate::fuzzing::template(&found_by_fuzzing);
        assert_eq!(
            text(r#"{{ "%-12s|%05.1f|%+d"|format(detail.name, detail.amount, 3) }}"#).unwrap(),
            "Ana         |012.5|+3"
        );
    }
    use crate::segments::Encoding;
    use serde_json::json;

    fn context() -> serde_json::Value {
        let detail = json!({
            "invoice_id": "INV-42",
            "amount": "125.00",
            "due_date": "2026-12-01",
            "items": [
                {"name": "Rent", "amount": "100.00"},
                {"name": "Parking", "amount": "15.00"},
                {"name": "Water", "amount": "10.00"},
            ],
            "owner": "Tom & Jerry <3",
        });
        json!({
            "event": {"source": "billing", "detail-type": "invoice.overdue", "detail": detail},
            "detail": detail,
            "tenant": {"id": "t-1", "name": "Ana"},
        })
    }

    fn texts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn templates(pairs: &[(&str, &str)]) -> Templates {
        Templates::compile(&texts(pairs)).unwrap()
    }

    fn render(source: &str) -> Result<String, RenderError> {
        Text::compile(source).unwrap().render(&context())
    }

    const REMINDER: &str = "Hi {{ tenant.name }}, invoice {{ detail.invoice_id }} for \
        ${{ detail.amount }} was due {{ detail.due_date }}:\n\
        {% for item in detail.items %}{{ item.name }} ${{ item.amount }}\
        {% if not loop.last %}, {% endif %}{% endfor %}.";

    #[test]
    fn renders_detail_and_tenant_fields() {
        let t = templates(&[("en", REMINDER), ("es", "Hola {{ tenant.name }}")]);
        let choice = t.choose(Some(Language::En), None);
        let rendered = t.render(&choice, &context()).unwrap();
        assert_eq!(
            rendered.body,
            "Hi Ana, invoice INV-42 for $125.00 was due 2026-12-01:\n\
             Rent $100.00, Parking $15.00, Water $10.00."
        );
        assert_eq!(
            rendered.segments,
            Segments {
                count: 1,
                encoding: Encoding::Gsm7
            }
        );
        let choice = t.choose(Some(Language::Es), None);
        assert_eq!(t.render(&choice, &context()).unwrap().body, "Hola Ana");
        // The whole event is there too, dashes and all.
        assert_eq!(
            render("{{ event['detail-type'] }} from {{ event.source }}").unwrap(),
            "invoice.overdue from billing"
        );
    }

    #[test]
    fn sms_is_plain_text_and_trimmed() {
        assert_eq!(render("{{ detail.owner }}").unwrap(), "Tom & Jerry <3");
        assert_eq!(
            render("\n  {% if detail.amount %}Due{% endif %}\n\n").unwrap(),
            "Due"
        );
    }

    #[test]
    fn undefined_values_fail_and_name_the_expression_not_the_values() {
        let err = render("Hi {{ tenant.name }},\nyou owe {{ detail.amout }}").unwrap_err();
        assert_eq!(
            err,
            RenderError::Failed("line 2: undefined value: `detail.amout` is undefined".into())
        );
        // A calculation's operands are the event's values: not echoed.
        let err = render("{{ detail.items | length // 0 }}").unwrap_err();
        assert_eq!(
            err,
            RenderError::Failed(
                "line 1: invalid operation: arithmetic overflow or division by zero".into()
            )
        );
        let err = render("{{ detail.amount + 1 }}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "template failed: line 1: invalid operation: \
             tried to use + operator on unsupported types string and number"
        );
        assert!(matches!(
            render("{{ detail.amount | no_such_filter }}"),
            Err(RenderError::Failed(m)) if m == "line 1: unknown filter: filter no_such_filter is unknown"
        ));
        // `default` is how a template says a field is optional.
        assert_eq!(
            render("{{ detail.note | default('no note') }}").unwrap(),
            "no note"
        );
    }

    #[test]
    fn a_huge_loop_runs_out_of_fuel_quickly() {
        let text = Text::compile("{% for i in range(100000) %}{{ i }}{% endfor %}").unwrap();
        let started = std::time::Instant::now();
        let err = text.render(&context()).unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(
            err,
            RenderError::Failed(
                "line 1: the template does too much work (more than 5000 steps)".into()
            )
        );
        // Unoptimized, on a slow machine: still far below a Lambda's patience.
        assert!(
            elapsed < std::time::Duration::from_millis(100),
            "{elapsed:?}"
        );
    }

    #[test]
    fn no_loader_and_self_inclusion_is_bounded() {
        assert_eq!(
            render("{% include 'secrets.txt' %}"),
            Err(RenderError::Failed(
                "line 1: template not found: tried to include non-existing template \
                 'secrets.txt'"
                    .into()
            ))
        );
        // Including itself is the only include that resolves; it hits the recursion limit.
        assert_eq!(
            render("x{% include 'text' %}"),
            Err(RenderError::Failed(
                "line 1: invalid operation: recursion limit exceeded".into()
            ))
        );
    }

    /// The figure [`FUEL`] is justified by: a realistic reminder spends a tenth of it or less.
    #[test]
    fn fuel_spent_by_a_realistic_template() {
        let text = Text::compile(REMINDER).unwrap();
        let template = text.env.get_template(NAME).unwrap();
        let ctx = Context::from_json(&context());
        let captured = template.render_captured(ctx.0).unwrap();
        let (spent, left) = captured.state().fuel_levels().unwrap();
        assert_eq!(spent + left, FUEL);
        println!("fuel spent: {spent}");
        assert!(spent > 20 && spent < FUEL / 10, "{spent}");
    }

    #[test]
    fn long_output_is_too_long() {
        // GSM-7: 1530 characters are 10 segments of 153; 1531 are 11.
        assert_eq!(render("{{ 'a' * 1530 }}").map(|b| b.len()), Ok(1530));
        let t = templates(&[("default", "{{ 'a' * (detail.items | length) * 512 }}")]);
        let choice = t.choose(None, None);
        assert_eq!(
            t.render(&choice, &context()),
            Err(RenderError::TooLong { segments: 11 })
        );
        // UCS-2: 670 characters are 10 segments of 67, 671 are 11, far below 1600 chars.
        let ok = templates(&[("en", "{{ 'ç' * 670 }}")]);
        let rendered = ok.render(&ok.choose(None, None), &context()).unwrap();
        assert_eq!(rendered.segments.count, 10);
        let long = templates(&[("en", "{{ 'ç' * 671 }}")]);
        assert_eq!(
            long.render(&long.choose(None, None), &context()),
            Err(RenderError::TooLong { segments: 11 })
        );
        // Over MAX_BODY_CHARS also bounds a single Text.
        assert_eq!(
            render("{{ 'a' * 1601 }}"),
            Err(RenderError::TooLong { segments: 11 })
        );
    }

    #[test]
    fn blank_output_is_empty() {
        assert_eq!(
            render("{% if false %}x{% endif %} \n "),
            Err(RenderError::Empty)
        );
        let t = templates(&[("en", "{{ detail.blank }}")]);
        let ctx = json!({"detail": {"blank": "   "}});
        assert_eq!(
            t.render(&t.choose(None, None), &ctx),
            Err(RenderError::Empty)
        );
    }

    #[test]
    fn compile_errors_have_exact_positions() {
        let source = "Hi {{ tenant.name }},\nyour balance is {{ detail.amount }\nthanks";
        let err = Templates::compile(&texts(&[("en", REMINDER), ("es", source)])).unwrap_err();
        assert_eq!(
            err,
            TemplateError {
                language: Some("es".into()),
                line: 2,
                column: 34,
                message: "unexpected `}`, expected end of variable block".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "template `es`, line 2, column 34: unexpected `}`, expected end of variable block"
        );
        let err = Text::compile("Hello {{ na").unwrap_err();
        assert_eq!(
            (err.language.as_deref(), err.line, err.column),
            (None, 1, 10)
        );
        assert_eq!(
            err.to_string(),
            "template, line 1, column 10: unexpected end of input, expected end of variable block"
        );
        // Columns count characters, not bytes.
        let err = Text::compile("¡Olá!\n{% if %}").unwrap_err();
        assert_eq!((err.line, err.column), (2, 7));
        let err = Text::compile("ñ {{ 1 + }}").unwrap_err();
        assert_eq!((err.line, err.column), (1, 10));
    }

    #[test]
    fn texts_are_validated_as_a_set() {
        let err = Templates::compile(&texts(&[("en", "Hi"), ("fr", "Salut")])).unwrap_err();
        assert_eq!(
            err,
            TemplateError {
                language: Some("fr".into()),
                line: 0,
                column: 0,
                message: "unknown language; expected en, es, pt or default".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "template `fr`: unknown language; expected en, es, pt or default"
        );
        let err = Templates::compile(&texts(&[("EN", "Hi")])).unwrap_err();
        assert_eq!(err.language.as_deref(), Some("EN"));
        let err = Templates::compile(&texts(&[("es", "Hola"), ("pt", "Olá")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "template: needs a `default` or an `en` text, for recipients whose language has none"
        );
        let err = Templates::compile(&texts(&[("en", " \n")])).unwrap_err();
        assert_eq!(err.to_string(), "template `en`: is empty");
        let big = "x".repeat(MAX_SOURCE_BYTES + 1);
        let err = Templates::compile(&texts(&[("default", &big)])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "template `default`: is 4097 bytes; at most 4096 are allowed"
        );
        assert!(Text::compile(&"x".repeat(MAX_SOURCE_BYTES)).is_ok());
        assert!(Text::compile(&big).is_err());
    }

    #[test]
    fn choice_precedence() {
        use Language::{En, Es, Pt, Unknown};
        use LanguageSource as S;
        let choose = |t: &Templates, tenant, conversation| {
            let c = t.choose(tenant, conversation);
            (c.key, c.language, c.source)
        };
        let all = templates(&[("en", "Hi"), ("es", "Hola"), ("default", "Hi/Hola")]);
        assert_eq!(choose(&all, Some(Es), Some(En)), ("es", Es, S::Tenant));
        assert_eq!(choose(&all, Some(En), Some(Es)), ("en", En, S::Tenant));
        // No Portuguese text: the conversation's language is next.
        assert_eq!(
            choose(&all, Some(Pt), Some(Es)),
            ("es", Es, S::Conversation)
        );
        // Unknown never selects, even where a text exists.
        assert_eq!(
            choose(&all, Some(Unknown), Some(En)),
            ("en", En, S::Conversation)
        );
        assert_eq!(choose(&all, None, Some(Es)), ("es", Es, S::Conversation));
        assert_eq!(
            choose(&all, Some(Pt), Some(Pt)),
            ("default", Unknown, S::Default)
        );
        assert_eq!(
            choose(&all, None, Some(Unknown)),
            ("default", Unknown, S::Default)
        );
        assert_eq!(choose(&all, None, None), ("default", Unknown, S::Default));
        // Without a default text, English is the fallback.
        let en_es = templates(&[("en", "Hi"), ("es", "Hola")]);
        assert_eq!(choose(&en_es, Some(Pt), None), ("en", En, S::Default));
        assert_eq!(choose(&en_es, None, None), ("en", En, S::Default));
        // Without an English text, English speakers get the default.
        let default_pt = templates(&[("default", "Hi"), ("pt", "Olá")]);
        assert_eq!(
            choose(&default_pt, Some(En), None),
            ("default", Unknown, S::Default)
        );
        assert_eq!(
            serde_json::to_value(all.choose(Some(Es), None)).unwrap(),
            json!({"key": "es", "language": "es", "source": "tenant"})
        );
        // A choice made for another set is refused, not silently rerouted.
        let pt = default_pt.choose(Some(Pt), None);
        assert_eq!(
            en_es.render(&pt, &context()),
            Err(RenderError::Failed("no `pt` text".into()))
        );
    }

    #[test]
    fn serde_is_the_source_text() {
        let pairs = [("en", "Hi {{ tenant.name }}"), ("default", "Hi")];
        let t = templates(&pairs);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json, json!({"en": "Hi {{ tenant.name }}", "default": "Hi"}));
        let back: Templates = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.texts(), &texts(&pairs));
        let err = serde_json::from_value::<Templates>(json!({"en": "{{"})).unwrap_err();
        assert!(
            err.to_string().starts_with("template `en`, line 1, column"),
            "{err}"
        );
        assert!(serde_json::from_value::<Templates>(json!({"en": 5})).is_err());

        let text = Text::compile("{{ detail.invoice_id }}").unwrap();
        assert_eq!(text.source(), "{{ detail.invoice_id }}");
        assert_eq!(
            serde_json::to_value(&text).unwrap(),
            json!("{{ detail.invoice_id }}")
        );
        let back: Text = serde_json::from_value(json!("{{ detail.invoice_id }}")).unwrap();
        assert_eq!(back.render(&context()).unwrap(), "INV-42");
        let err = serde_json::from_value::<Text>(json!("{% if %}")).unwrap_err();
        assert!(
            err.to_string().starts_with("template, line 1, column"),
            "{err}"
        );
    }

    #[test]
    fn one_context_serves_many_renders() {
        let ctx = Context::from_json(&context());
        let key = Text::compile("{{ detail.invoice_id }}:reminder").unwrap();
        let t = templates(&[("en", "Invoice {{ detail.invoice_id }}")]);
        assert_eq!(key.render_with(&ctx).unwrap(), "INV-42:reminder");
        let choice = t.choose(None, None);
        assert_eq!(t.render_with(&choice, &ctx).unwrap().body, "Invoice INV-42");
        assert_eq!(key.render_with(&ctx).unwrap(), "INV-42:reminder");
    }

    #[test]
    fn compiled_texts_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Text>();
        shareable::<Templates>();
        shareable::<Context>();
    }
}
