//! When a rule's message is due: now, a fixed delay after the event, or relative to a date
//! the event carries ("the day after `detail.due_date`, at 10:00 the tenant's time").
//!
//! The result is a [`SendAt`] as the send API takes it, so a rule's message is scheduled,
//! held for quiet hours and re-resolved exactly like one sent through `POST /sms/send`: a
//! wall-clock time stays [`SendAt::Local`] and means "10:00 for them" whatever the UTC offset
//! is that day.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::fmt::temporal::SpanParser;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo, ZonedDateTime};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::path::JsonPath;
use crate::schedule::{self, SendAt, SendAtError, MAX_YEARS_AHEAD};
use crate::time::Timestamp;

/// Durations are echoed in errors shown to rule authors; no real one is this long.
const MAX_DURATION_CHARS: usize = 64;

/// ISO 8601 only (`P1DT2H`); jiff's "friendly" format (`1 day`) is refused so a rule reads
/// the same to every tool that shows it.
static PARSER: SpanParser = SpanParser::new();

/// When a rule's message is due.
///
/// JSON forms: `"now"`, `{"delay": "PT2H"}`, and
/// `{"at": "$.detail.due_date", "offset": "P1D", "local_time": "10:00"}` (`offset` and
/// `local_time` optional).
#[derive(Debug, Clone, PartialEq)]
pub enum Timing {
    Now,
    /// A fixed duration after the event's `time`.
    Delay {
        delay: Delay,
    },
    /// Relative to a date or date-time the event carries.
    At {
        at: JsonPath,
        /// Calendar-aware: days and months are counted in the recipient's zone.
        offset: Option<Offset>,
        /// Move the result to this wall-clock time on the local date it falls on.
        local_time: Option<Time>,
    },
}

/// What a [`Timing`] resolved to for one event and recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// For the send use case; `None` for [`Timing::Now`].
    pub send_at: Option<SendAt>,
    /// The UTC instant it designates in the recipient's zone (`now` for [`Timing::Now`]),
    /// exactly as [`schedule::resolve`] reads `send_at`. It may be in the past.
    pub instant: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// The path names nothing in the event (or `null`).
    #[error("{path} is not in the event")]
    Missing { path: String },
    /// The value is not a date, or (from [`Window::parse`], with `path` "not_after") the
    /// duration is not one.
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// Before 2000, more than [`MAX_YEARS_AHEAD`] years ahead, or outside the calendar.
    #[error("{0}")]
    OutOfRange(String),
}

impl Timing {
    /// `event_time` is the event's `time` (the base of a delay); `now` bounds the result as
    /// the send API does. A time in the past is not an error: the send path sends it now or
    /// the caller decides.
    pub fn resolve(
        &self,
        event: &Value,
        event_time: Timestamp,
        now: Timestamp,
        zone: &TimeZone,
    ) -> Result<Resolved, TimingError> {
        let send_at = match self {
            Timing::Now => {
                return Ok(Resolved {
                    send_at: None,
                    instant: now,
                })
            }
            Timing::Delay { delay } => {
                let at = event_time
                    .jiff()
                    .checked_add(delay.duration())
                    .map_err(|_| out_of_calendar())?;
                SendAt::Instant(at)
            }
            Timing::At {
                at,
                offset,
                local_time,
            } => relative(read(at, event)?, offset.as_ref(), *local_time, zone)?,
        };
        let instant = schedule::resolve(&send_at, zone, now.jiff()).map_err(out_of_range)?;
        Ok(Resolved {
            send_at: Some(send_at),
            instant: Timestamp::from_jiff(instant),
        })
    }

    /// For previews: `now`, `PT2H after the event`, `P1D after $.detail.due_date, at 10:00
    /// local`.
    pub fn describe(&self) -> String {
        match self {
            Timing::Now => "now".to_owned(),
            Timing::Delay { delay } => format!("{delay} after the event"),
            Timing::At {
                at,
                offset,
                local_time,
            } => {
                let mut text = match (offset, local_time) {
                    (Some(offset), _) => offset.describe(at),
                    (None, Some(_)) => format!("on the local date of {at}"),
                    (None, None) => format!("at {at}"),
                };
                if let Some(time) = local_time {
                    text.push_str(&format!(", at {} local", hh_mm(*time)));
                }
                text
            }
        }
    }
}

/// The date an `at` path names, in the forms the send API's `send_at` takes plus a bare date.
#[derive(Debug, Clone, Copy)]
enum Start {
    Instant(jiff::Timestamp),
    Local(DateTime),
    Date(Date),
}

fn read(at: &JsonPath, event: &Value) -> Result<Start, TimingError> {
    let value = match at.select(event) {
        None | Some(Value::Null) => {
            return Err(TimingError::Missing {
                path: at.to_string(),
            })
        }
        Some(value) => value,
    };
    let unreadable = |reason: String| TimingError::Unreadable {
        path: at.to_string(),
        reason,
    };
    let text = value
        .as_str()
        .ok_or_else(|| unreadable(format!("expected a date string, found {}", kind(value))))?;
    parse_start(text).map_err(unreadable)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The reason never echoes the value: it comes from an event and may be anything.
fn parse_start(text: &str) -> Result<Start, String> {
    if let Some(date) = bare_date(text) {
        return date.map(Start::Date);
    }
    match SendAt::parse(text) {
        Ok(SendAt::Instant(ts)) => Ok(Start::Instant(ts)),
        Ok(SendAt::Local(dt)) => Ok(Start::Local(dt)),
        Err(SendAtError::Invalid { reason, .. }) => Err(reason.to_owned()),
        Err(_) => Err(
            "expected an RFC 3339 instant (2026-12-01T15:00:00Z), a local \
                       date-time (2026-12-01T15:00) or a date (2026-12-01)"
                .to_owned(),
        ),
    }
}

/// `Some` when `text` has the shape `YYYY-MM-DD`; then whether that day exists.
fn bare_date(text: &str) -> Option<Result<Date, String>> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    let field = |range: std::ops::Range<usize>| text[range].parse::<i16>().unwrap_or(0);
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    Some(if year == 0 {
        Err("year must be 0001 or later".to_owned())
    } else {
        Date::new(year, month as i8, day as i8).map_err(|_| "that date does not exist".to_owned())
    })
}

/// Offset arithmetic happens on a zoned date-time, so `P1D` is a calendar day in the
/// recipient's zone (the same wall-clock time across a DST change) and `PT1H` an hour of
/// real time.
fn relative(
    start: Start,
    offset: Option<&Offset>,
    local_time: Option<Time>,
    zone: &TimeZone,
) -> Result<SendAt, TimingError> {
    let mut zoned = anchor(start, zone)?;
    if let Some(offset) = offset {
        zoned = zoned
            .checked_add(offset.span)
            .map_err(|_| out_of_calendar())?;
    }
    Ok(match (local_time, start) {
        (Some(time), _) => SendAt::Local(zoned.date().to_datetime(time)),
        (None, Start::Instant(_)) => SendAt::Instant(zoned.timestamp()),
        // A wall-clock input stays wall-clock: it is re-read in the zone when sent.
        (None, Start::Local(_) | Start::Date(_)) => SendAt::Local(zoned.datetime()),
    })
}

/// A bare date is local midnight; a local date-time in a DST gap moves forward by the gap,
/// as [`schedule::resolve`] does.
fn anchor(start: Start, zone: &TimeZone) -> Result<ZonedDateTime, TimingError> {
    match start {
        Start::Instant(ts) => Ok(ts.to_zoned_datetime(zone.clone())),
        Start::Local(dt) => zone.to_zoned_datetime(dt),
        Start::Date(date) => zone.to_zoned_datetime(date.to_datetime(Time::midnight())),
    }
    .map_err(|_| out_of_calendar())
}

fn out_of_calendar() -> TimingError {
    TimingError::OutOfRange("the send time falls outside the calendar".to_owned())
}

fn out_of_range(err: SendAtError) -> TimingError {
    TimingError::OutOfRange(match err {
        SendAtError::TooEarly => "the send time is before 2000-01-01T00:00:00Z".to_owned(),
        SendAtError::TooFarAhead => {
            format!("the send time is more than {MAX_YEARS_AHEAD} years ahead")
        }
        other => other.to_string(),
    })
}

fn hh_mm(time: Time) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// `HH:MM`, 00:00 to 23:59.
fn parse_local_time(text: &str) -> Result<Time, String> {
    let b = text.as_bytes();
    let digits = |i: usize| (b[i] - b'0') * 10 + (b[i + 1] - b'0');
    let shaped =
        b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit());
    shaped
        .then(|| Time::new(digits(0) as i8, digits(3) as i8, 0, 0).ok())
        .flatten()
        .ok_or_else(|| format!("local_time {:?} must be HH:MM, 00:00 to 23:59", echo(text)))
}

fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_DURATION_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// An ISO 8601 duration; the error says what is wrong without naming the field.
fn parse_span(text: &str) -> Result<Span, String> {
    let malformed = || {
        format!(
            "{:?} must be an ISO 8601 duration like PT2H or P1D",
            echo(text)
        )
    };
    if text.chars().count() > MAX_DURATION_CHARS {
        return Err(malformed());
    }
    PARSER.parse_span(text).map_err(|_| malformed())
}

/// A fixed, non-negative duration as written and as parsed: weeks, days, hours, minutes,
/// seconds. Days are 24 hours (no zone is involved); calendar months and years are refused
/// because their length depends on where they start — `at` with an `offset` takes those.
#[derive(Debug, Clone)]
struct Fixed {
    text: String,
    duration: SignedDuration,
}

impl Fixed {
    fn parse(text: &str) -> Result<Fixed, String> {
        let span = parse_span(text)?;
        if span.is_negative() {
            return Err(format!("{text:?} must not be negative"));
        }
        if span.get_years() != 0 || span.get_months() != 0 {
            return Err(format!(
                "{text:?} may only use weeks, days, hours, minutes and seconds"
            ));
        }
        let duration = span
            .to_duration(SpanRelativeTo::days_are_24_hours())
            .map_err(|_| format!("{text:?} is too long"))?;
        Ok(Fixed {
            text: text.to_owned(),
            duration,
        })
    }
}

/// Equal when written the same: `PT2H` and `PT120M` are different rules to a reader, and
/// serialize differently.
impl PartialEq for Fixed {
    fn eq(&self, other: &Fixed) -> bool {
        self.text == other.text
    }
}

/// A delay after the event's time: fixed units only, days are 24 hours (a delay counts
/// elapsed time from an instant; for "the same time tomorrow" use `at` with an offset).
#[derive(Debug, Clone, PartialEq)]
pub struct Delay(Fixed);

impl Delay {
    pub fn parse(text: &str) -> Result<Delay, String> {
        Fixed::parse(text)
            .map(Delay)
            .map_err(|reason| format!("delay {reason}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    pub fn duration(&self) -> SignedDuration {
        self.0.duration
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signed offset from an `at` date, in any units; days, weeks, months and years are
/// calendar units in the recipient's zone.
#[derive(Debug, Clone)]
pub struct Offset {
    text: String,
    span: Span,
}

impl Offset {
    pub fn parse(text: &str) -> Result<Offset, String> {
        Ok(Offset {
            span: parse_span(text).map_err(|reason| format!("offset {reason}"))?,
            text: text.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn span(&self) -> Span {
        self.span
    }

    fn describe(&self, at: &JsonPath) -> String {
        let magnitude = self.text.trim_start_matches(['-', '+']);
        if self.span.is_negative() {
            format!("{magnitude} before {at}")
        } else {
            format!("{magnitude} after {at}")
        }
    }
}

/// Equal when written the same, like [`Delay`].
impl PartialEq for Offset {
    fn eq(&self, other: &Offset) -> bool {
        self.text == other.text
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `not_after` on a rule: an ISO 8601 duration after the resolved send time, in fixed units
/// (days are 24 hours) like a [`Delay`]: the instant it is added to has no zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Window(Fixed);

impl Window {
    /// A bad duration is [`TimingError::Unreadable`] with `path` "not_after".
    pub fn parse(text: &str) -> Result<Window, TimingError> {
        Fixed::parse(text)
            .map(Window)
            .map_err(|reason| TimingError::Unreadable {
                path: "not_after".to_owned(),
                reason,
            })
    }

    /// Saturates at the end of time rather than failing: a huge window just means "never
    /// too late".
    pub fn after(&self, instant: Timestamp) -> Timestamp {
        let end = instant
            .jiff()
            .checked_add(self.0.duration)
            .unwrap_or(jiff::Timestamp::MAX);
        Timestamp::from_jiff(end)
    }

    /// The start of the window that ends at `instant` (a rolling cap's "since").
    pub fn before(&self, instant: Timestamp) -> Timestamp {
        let start = instant
            .jiff()
            .checked_sub(self.0.duration)
            .unwrap_or(jiff::Timestamp::MIN);
        Timestamp::from_jiff(start)
    }

    pub fn as_str(&self) -> &str {
        &self.0.text
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Window, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

const FORMS: &str = "timing must be \"now\", {\"delay\": \"PT2H\"} or \
                     {\"at\": \"$.detail.due_date\", \"offset\": \"P1D\", \"local_time\": \"10:00\"}";

impl Timing {
    /// The JSON form; what [`Serialize`] writes.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        match self {
            Timing::Now => return Value::from("now"),
            Timing::Delay { delay } => {
                map.insert("delay".into(), delay.as_str().into());
            }
            Timing::At {
                at,
                offset,
                local_time,
            } => {
                map.insert("at".into(), at.to_string().into());
                if let Some(offset) = offset {
                    map.insert("offset".into(), offset.text.clone().into());
                }
                if let Some(time) = local_time {
                    map.insert("local_time".into(), hh_mm(*time).into());
                }
            }
        }
        Value::Object(map)
    }

    /// Reads the JSON form, with an error that says which part is wrong.
    pub fn from_json(value: &Value) -> Result<Timing, String> {
        match value {
            Value::String(s) if s == "now" => Ok(Timing::Now),
            Value::Object(map) => Timing::from_fields(map),
            _ => Err(FORMS.to_owned()),
        }
    }

    fn from_fields(map: &Map<String, Value>) -> Result<Timing, String> {
        if let Some(unknown) = map
            .keys()
            .find(|k| !["delay", "at", "offset", "local_time"].contains(&k.as_str()))
        {
            return Err(format!("timing has an unknown field {unknown:?}; {FORMS}"));
        }
        let field = |name: &str| -> Result<Option<&str>, String> {
            match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(format!("timing's {name} must be a string")),
            }
        };
        let (offset, local_time) = (field("offset")?, field("local_time")?);
        match (field("delay")?, field("at")?) {
            (Some(_), Some(_)) => Err("timing has both delay and at; give one".to_owned()),
            (Some(_), None) if offset.is_some() || local_time.is_some() => {
                Err("timing's offset and local_time go with at, not delay".to_owned())
            }
            (Some(delay), None) => Ok(Timing::Delay {
                delay: Delay::parse(delay)?,
            }),
            (None, Some(at)) => Ok(Timing::At {
                at: JsonPath::parse(at).map_err(|e| format!("timing's at: {e}"))?,
                offset: offset.map(Offset::parse).transpose()?,
                local_time: local_time.map(parse_local_time).transpose()?,
            }),
            (None, None) => Err(FORMS.to_owned()),
        }
    }
}

impl Serialize for Timing {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Timing {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timing, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Timing::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn now() -> Timestamp {
        ts("2026-11-30T12:00:00Z")
    }

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn timing(json: Value) -> Timing {
        serde_json::from_value(json).unwrap()
    }

    /// Resolves `json` against an event whose `detail.due` is `due`, in New York.
    fn resolve_due(json: Value, due: Value) -> Result<Resolved, TimingError> {
        let event = json!({"detail": {"due": due}});
        timing(json).resolve(&event, now(), now(), &ny())
    }

    fn local(s: &str) -> Option<SendAt> {
        Some(SendAt::Local(s.parse().unwrap()))
    }

    fn instant(s: &str) -> Option<SendAt> {
        Some(SendAt::Instant(s.parse().unwrap()))
    }

    #[test]
    fn now_is_now_without_a_send_at() {
        let r = timing(json!("now"))
            .resolve(&json!({}), ts("2026-01-01T00:00:00Z"), now(), &ny())
            .unwrap();
        assert_eq!(
            r,
            Resolved {
                send_at: None,
                instant: now()
            }
        );
    }

    #[test]
    fn delay_counts_from_the_event_time_in_fixed_units() {
        let event_time = ts("2026-03-07T15:00:00Z");
        for (delay, want) in [
            ("PT2H", "2026-03-07T17:00:00Z"),
            ("PT90M", "2026-03-07T16:30:00Z"),
            // Across New York's DST change a delay day is still 24 hours.
            ("P1D", "2026-03-08T15:00:00Z"),
            ("P1W", "2026-03-14T15:00:00Z"),
            ("PT0S", "2026-03-07T15:00:00Z"),
        ] {
            let r = timing(json!({ "delay": delay }))
                .resolve(&json!({}), event_time, now(), &ny())
                .unwrap();
            assert_eq!(r.send_at, instant(want), "{delay}");
            assert_eq!(r.instant, ts(want), "{delay}");
        }
    }

    #[test]
    fn delays_with_calendar_units_or_a_sign_are_refused() {
        let cases = [
            (
                "P1M",
                "delay \"P1M\" may only use weeks, days, hours, minutes and seconds",
            ),
            (
                "P1Y",
                "delay \"P1Y\" may only use weeks, days, hours, minutes and seconds",
            ),
            ("-PT1H", "delay \"-PT1H\" must not be negative"),
            (
                "2h",
                "delay \"2h\" must be an ISO 8601 duration like PT2H or P1D",
            ),
            (
                "1 day",
                "delay \"1 day\" must be an ISO 8601 duration like PT2H or P1D",
            ),
            (
                "",
                "delay \"\" must be an ISO 8601 duration like PT2H or P1D",
            ),
        ];
        for (delay, want) in cases {
            let err = Timing::from_json(&json!({ "delay": delay })).unwrap_err();
            assert_eq!(err, want);
        }
    }

    #[test]
    fn an_instant_stays_an_instant_and_offsets_are_zoned() {
        let cases = [
            ("2026-12-01T15:00:00Z", None, "2026-12-01T15:00:00Z"),
            ("2026-12-01T10:00:00-05:00", None, "2026-12-01T15:00:00Z"),
            (
                "2026-12-01T15:00:00Z",
                Some("-PT1H"),
                "2026-12-01T14:00:00Z",
            ),
            ("2026-12-01T15:00:00Z", Some("-P1D"), "2026-11-30T15:00:00Z"),
            // 10:00 EST + one calendar day = 10:00 EDT: the wall clock is kept...
            ("2026-03-07T15:00:00Z", Some("P1D"), "2026-03-08T14:00:00Z"),
            // ...while 24 hours of real time is 11:00 EDT.
            (
                "2026-03-07T15:00:00Z",
                Some("PT24H"),
                "2026-03-08T15:00:00Z",
            ),
        ];
        for (due, offset, want) in cases {
            let mut spec = json!({"at": "$.detail.due"});
            if let Some(offset) = offset {
                spec["offset"] = offset.into();
            }
            let r = resolve_due(spec, due.into()).unwrap();
            assert_eq!(r.send_at, instant(want), "{due} {offset:?}");
            assert_eq!(r.instant, ts(want), "{due} {offset:?}");
        }
    }

    #[test]
    fn calendar_offsets_clamp_to_the_end_of_the_month() {
        let r = resolve_due(
            json!({"at": "$.detail.due", "offset": "P1M"}),
            "2026-01-31".into(),
        );
        assert_eq!(r.unwrap().send_at, local("2026-02-28T00:00"));
        let r = resolve_due(
            json!({"at": "$.detail.due", "offset": "P1Y"}),
            "2028-02-29T09:00".into(),
        );
        assert_eq!(r.unwrap().send_at, local("2029-02-28T09:00"));
        let r = resolve_due(
            json!({"at": "$.detail.due", "offset": "-P1M2D"}),
            "2026-03-31T09:00".into(),
        );
        assert_eq!(r.unwrap().send_at, local("2026-02-26T09:00"));
    }

    #[test]
    fn local_time_across_spring_forward_in_new_york() {
        let spec = json!({"at": "$.detail.due", "offset": "P1D", "local_time": "10:00"});
        let r = resolve_due(spec.clone(), "2026-03-07".into()).unwrap();
        assert_eq!(r.send_at, local("2026-03-08T10:00"));
        assert_eq!(r.instant, ts("2026-03-08T14:00:00Z"), "10:00 EDT");
        // The day before, the same rule gives 10:00 EST.
        let r = resolve_due(spec, "2026-03-06".into()).unwrap();
        assert_eq!(r.instant, ts("2026-03-07T15:00:00Z"), "10:00 EST");
    }

    #[test]
    fn local_time_takes_the_local_date_the_result_falls_on() {
        // 03:00Z on 12-02 is 22:00 on 12-01 in New York: 10:00 that (local) day.
        let spec = json!({"at": "$.detail.due", "local_time": "10:00"});
        let r = resolve_due(spec, "2026-12-02T03:00:00Z".into()).unwrap();
        assert_eq!(r.send_at, local("2026-12-01T10:00"));
        assert_eq!(r.instant, ts("2026-12-01T15:00:00Z"));
        // With an offset the date is taken after applying it.
        let spec = json!({"at": "$.detail.due", "offset": "PT3H", "local_time": "09:30"});
        let r = resolve_due(spec, "2026-12-02T03:00:00Z".into()).unwrap();
        assert_eq!(r.send_at, local("2026-12-02T09:30"));
    }

    #[test]
    fn a_date_alone_is_local_midnight() {
        let r = resolve_due(json!({"at": "$.detail.due"}), "2026-12-01".into()).unwrap();
        assert_eq!(r.send_at, local("2026-12-01T00:00"));
        assert_eq!(r.instant, ts("2026-12-01T05:00:00Z"));
        let r = resolve_due(
            json!({"at": "$.detail.due", "offset": "-PT1H"}),
            "2026-12-01".into(),
        )
        .unwrap();
        assert_eq!(r.send_at, local("2026-11-30T23:00"));
        // A local date-time without an offset stays local too.
        let r = resolve_due(json!({"at": "$.detail.due"}), "2026-12-01T15:00".into()).unwrap();
        assert_eq!(r.send_at, local("2026-12-01T15:00"));
        assert_eq!(r.instant, ts("2026-12-01T20:00:00Z"));
    }

    #[test]
    fn the_instant_is_what_schedule_resolve_gives() {
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let spec = timing(json!({"at": "$.d", "offset": "P2D", "local_time": "08:15"}));
        let event = json!({"d": "2027-03-13"});
        let r = spec.resolve(&event, now(), now(), &tokyo).unwrap();
        let send_at = r.send_at.unwrap();
        assert_eq!(send_at, SendAt::Local(date(2027, 3, 15).at(8, 15, 0, 0)));
        let want = schedule::resolve(&send_at, &tokyo, now().jiff()).unwrap();
        assert_eq!(r.instant, Timestamp::from_jiff(want));
        assert_eq!(r.instant, ts("2027-03-14T23:15:00Z"));
    }

    #[test]
    fn missing_and_unreadable_paths() {
        let event = json!({"detail": {"nothing": null, "n": 5, "s": "tomorrow",
                                      "feb": "2026-02-30", "febt": "2026-02-30T10:00",
                                      "zoned": "2026-12-01T10:00:00-05:00[America/New_York]"}});
        let at = |path: &str| timing(json!({ "at": path })).resolve(&event, now(), now(), &ny());
        for path in ["$.detail.absent", "$.detail.nothing", "$.other.x"] {
            assert_eq!(
                at(path),
                Err(TimingError::Missing { path: path.into() }),
                "{path}"
            );
        }
        let unreadable = |path: &str, reason: &str| {
            Err(TimingError::Unreadable {
                path: path.into(),
                reason: reason.into(),
            })
        };
        assert_eq!(
            at("$.detail.n"),
            unreadable("$.detail.n", "expected a date string, found a number")
        );
        let generic = "expected an RFC 3339 instant (2026-12-01T15:00:00Z), a local date-time \
                       (2026-12-01T15:00) or a date (2026-12-01)";
        assert_eq!(at("$.detail.s"), unreadable("$.detail.s", generic));
        assert_eq!(at("$.detail.zoned"), unreadable("$.detail.zoned", generic));
        assert_eq!(
            at("$.detail.feb"),
            unreadable("$.detail.feb", "that date does not exist")
        );
        assert_eq!(
            at("$.detail.febt"),
            unreadable("$.detail.febt", "that day does not exist in that month")
        );
        assert_eq!(
            at("$.detail.n").unwrap_err().to_string(),
            "cannot read $.detail.n: expected a date string, found a number"
        );
        assert_eq!(
            at("$.detail.absent").unwrap_err().to_string(),
            "$.detail.absent is not in the event"
        );
    }

    #[test]
    fn out_of_range_results_are_refused_and_the_past_is_not() {
        let too_far = TimingError::OutOfRange("the send time is more than 10 years ahead".into());
        let too_early =
            TimingError::OutOfRange("the send time is before 2000-01-01T00:00:00Z".into());
        assert_eq!(
            resolve_due(json!({"at": "$.detail.due"}), "2037-01-01".into()),
            Err(too_far.clone())
        );
        assert_eq!(
            resolve_due(
                json!({"at": "$.detail.due", "offset": "P11Y"}),
                "2026-12-01".into()
            ),
            Err(too_far.clone())
        );
        assert_eq!(
            resolve_due(json!({"at": "$.detail.due"}), "1999-06-01".into()),
            Err(too_early)
        );
        assert_eq!(
            resolve_due(
                json!({"at": "$.detail.due", "offset": "P9000Y"}),
                "2026-12-01".into()
            ),
            Err(TimingError::OutOfRange(
                "the send time falls outside the calendar".into()
            ))
        );
        let far = timing(json!({"delay": "P600W"})).resolve(&json!({}), now(), now(), &ny());
        assert_eq!(far, Err(too_far));
        // Yesterday is fine.
        let r = resolve_due(json!({"at": "$.detail.due"}), "2026-11-29T00:00:00Z".into()).unwrap();
        assert_eq!(r.instant, ts("2026-11-29T00:00:00Z"));
    }

    #[test]
    fn serde_round_trips_each_form() {
        let forms = [
            json!("now"),
            json!({"delay": "PT2H"}),
            json!({"at": "$.detail.due_date"}),
            json!({"at": "$['detail']['due-date']", "offset": "-PT1H"}),
            json!({"at": "$.detail.due_date", "offset": "P1D", "local_time": "10:00"}),
            json!({"at": "$.detail.due_date", "local_time": "23:59"}),
        ];
        for form in forms {
            let parsed: Timing = serde_json::from_value(form.clone()).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), form);
            let text = serde_json::to_string(&parsed).unwrap();
            assert_eq!(serde_json::from_str::<Timing>(&text).unwrap(), parsed);
        }
        // Explicit nulls read as absent.
        assert_eq!(
            timing(json!({"at": "$.x", "offset": null, "local_time": null})),
            timing(json!({"at": "$.x"}))
        );
        assert_eq!(
            timing(json!({"at": "$.x", "offset": "P1D", "local_time": "07:05"})),
            Timing::At {
                at: JsonPath::parse("$.x").unwrap(),
                offset: Some(Offset::parse("P1D").unwrap()),
                local_time: Some(Time::new(7, 5, 0, 0).unwrap()),
            }
        );
    }

    #[test]
    fn serde_errors_say_what_is_wrong() {
        let forms_error = FORMS.to_owned();
        let cases = [
            (json!("later"), forms_error.clone()),
            (json!(5), forms_error.clone()),
            (json!({}), forms_error.clone()),
            (json!({"delay": "PT2H", "at": "$.x"}), "timing has both delay and at; give one".into()),
            (
                json!({"delay": "PT2H", "offset": "P1D"}),
                "timing's offset and local_time go with at, not delay".into(),
            ),
            (
                json!({"at": "$.x", "whenever": 1}),
                format!("timing has an unknown field \"whenever\"; {FORMS}"),
            ),
            (json!({"delay": 5}), "timing's delay must be a string".into()),
            (
                json!({"at": "detail.x"}),
                "timing's at: \"detail.x\" is not a JSON path: must start with `$` (e.g. $.detail.tenant_id)".into(),
            ),
            (
                json!({"at": "$.x", "offset": "tomorrow"}),
                "offset \"tomorrow\" must be an ISO 8601 duration like PT2H or P1D".into(),
            ),
        ];
        for (json, want) in cases {
            let err = serde_json::from_value::<Timing>(json.clone()).unwrap_err();
            assert_eq!(err.to_string(), want, "{json}");
        }
        for bad in ["25:00", "10:60", "10", "10:00:00", "9:00", "ab:cd", ""] {
            let err = Timing::from_json(&json!({"at": "$.x", "local_time": bad})).unwrap_err();
            assert_eq!(
                err,
                format!("local_time {bad:?} must be HH:MM, 00:00 to 23:59")
            );
        }
    }

    #[test]
    fn describe_reads_like_the_rule() {
        let cases = [
            (json!("now"), "now"),
            (json!({"delay": "PT2H"}), "PT2H after the event"),
            (json!({"at": "$.detail.due_date"}), "at $.detail.due_date"),
            (
                json!({"at": "$.detail.due_date", "offset": "P1D", "local_time": "10:00"}),
                "P1D after $.detail.due_date, at 10:00 local",
            ),
            (
                json!({"at": "$.detail.due_date", "offset": "-PT1H"}),
                "PT1H before $.detail.due_date",
            ),
            (
                json!({"at": "$.detail.due_date", "local_time": "08:00"}),
                "on the local date of $.detail.due_date, at 08:00 local",
            ),
        ];
        for (json, want) in cases {
            assert_eq!(timing(json).describe(), want);
        }
    }

    #[test]
    fn windows_are_fixed_durations_after_the_send_time() {
        let window = Window::parse("P2D").unwrap();
        assert_eq!(window.after(now()), ts("2026-12-02T12:00:00Z"));
        assert_eq!(
            Window::parse("PT30M").unwrap().after(now()),
            ts("2026-11-30T12:30:00Z")
        );
        assert_eq!(serde_json::to_value(&window).unwrap(), json!("P2D"));
        assert_eq!(
            serde_json::from_value::<Window>(json!("P2D")).unwrap(),
            window
        );
        assert_eq!(
            Window::parse("P1M"),
            Err(TimingError::Unreadable {
                path: "not_after".into(),
                reason: "\"P1M\" may only use weeks, days, hours, minutes and seconds".into(),
            })
        );
        let err = serde_json::from_value::<Window>(json!("-P1D")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read not_after: \"-P1D\" must not be negative"
        );
        // Saturates instead of failing.
        let huge = Window::parse("P1000000W").unwrap_or_else(|e| panic!("{e}"));
        assert!(huge.after(now()) > ts("9000-01-01T00:00:00Z"));
    }
}
