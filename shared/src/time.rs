//! Timestamps as stored: RFC 3339 in UTC with exactly three fractional digits, so they sort
//! as text in time order. [`Timestamp`] is the typed form; it writes only that form and reads
//! any RFC 3339 instant.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::macros::format_description;
use time::OffsetDateTime;

pub fn format(at: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    format(OffsetDateTime::now_utc())
}

/// A stored timestamp (any RFC 3339 form) back as a time.
pub fn parse(at: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
}

/// An instant, kept to the millisecond, that always writes the sortable stored form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(jiff::Timestamp);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_jiff(jiff::Timestamp::now())
    }

    /// Truncated to the millisecond, the stored precision, so a value survives a round trip.
    pub fn from_jiff(at: jiff::Timestamp) -> Self {
        let millis = at.as_millisecond();
        Self(jiff::Timestamp::from_millisecond(millis).unwrap_or(at))
    }

    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        jiff::Timestamp::from_millisecond(millis).ok().map(Self)
    }

    pub fn parse(s: &str) -> Option<Self> {
        s.parse::<jiff::Timestamp>().ok().map(Self::from_jiff)
    }

    pub fn jiff(self) -> jiff::Timestamp {
        self.0
    }

    /// The same instant for code written against the `time` crate.
    pub fn offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.unix_millis()) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn unix_millis(self) -> i64 {
        self.0.as_millisecond()
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.as_second()
    }

    /// The UTC date (`2026-11-30`) and the instant the next UTC day starts: a daily quota's
    /// window and when it reopens.
    pub fn utc_day(self) -> (String, Self) {
        let day = self.0.as_second().div_euclid(86_400);
        let date = self.0.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
        let next = Self::from_unix_millis((day + 1) * 86_400_000).unwrap_or(self);
        (date.to_string(), next)
    }

    /// `self + d`, saturating at the far future rather than failing.
    pub fn plus(self, d: std::time::Duration) -> Self {
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self::from_unix_millis(self.unix_millis().saturating_add(millis)).unwrap_or(self)
    }

    pub fn minus(self, d: std::time::Duration) -> Self {
        let millis = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self::from_unix_millis(self.unix_millis().saturating_sub(millis)).unwrap_or(self)
    }

    /// How long from `self` until `later` (zero when `later` is not later).
    pub fn until(self, later: Timestamp) -> std::time::Duration {
        let millis = later.unix_millis().saturating_sub(self.unix_millis());
        std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    /// The start of the minute it falls in.
    pub fn minute(self) -> Self {
        let millis = self.unix_millis();
        Self::from_unix_millis(millis - millis.rem_euclid(60_000)).unwrap_or(self)
    }

    /// `2026-12-01T09:00`: the minute, as bucket keys name it.
    pub fn minute_key(self) -> String {
        self.to_string()[..16].to_owned()
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(at: OffsetDateTime) -> Self {
        let millis = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        Self::from_unix_millis(millis).unwrap_or_else(Self::now)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // jiff prints the shortest fraction; the stored form always has three digits.
        let seconds = self.0.as_second();
        let millis = self.0.subsec_millisecond();
        let whole = jiff::Timestamp::from_second(seconds).map_err(|_| fmt::Error)?;
        let text = whole.strftime("%Y-%m-%dT%H:%M:%S").to_string();
        write!(f, "{text}.{millis:03}Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Timestamp::parse(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 instant"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_so_text_order_is_time_order() {
        let a = format(time::macros::datetime!(2026-01-02 03:04:05.1 UTC));
        let b = format(time::macros::datetime!(2026-01-02 03:04:05.02 UTC));
        assert_eq!(a, "2026-01-02T03:04:05.100Z");
        assert_eq!(b, "2026-01-02T03:04:05.020Z");
        assert!(b < a);
    }

    #[test]
    fn the_newtype_writes_the_sortable_form_and_reads_any_offset() {
        let t = Timestamp::parse("2026-12-01T09:00:00-05:00").unwrap();
        assert_eq!(t.to_string(), "2026-12-01T14:00:00.000Z");
        assert_eq!(serde_json::to_value(t).unwrap(), "2026-12-01T14:00:00.000Z");
        let back: Timestamp = serde_json::from_value("2026-12-01T14:00:00.000Z".into()).unwrap();
        assert_eq!(back, t);
        let precise = Timestamp::parse("2026-12-01T14:00:00.123456Z").unwrap();
        assert_eq!(precise.to_string(), "2026-12-01T14:00:00.123Z");
        assert_eq!(precise.minute_key(), "2026-12-01T14:00");
        assert_eq!(precise.minute(), t);
        assert!(Timestamp::parse("2026-12-01T09:00").is_none());
        assert_eq!(
            t.until(t.plus(std::time::Duration::from_secs(90))),
            std::time::Duration::from_secs(90)
        );
        assert_eq!(
            t.until(t.minus(std::time::Duration::from_secs(1))),
            std::time::Duration::ZERO
        );
        let old = format(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        assert_eq!(Timestamp::parse(&old).unwrap().to_string(), old);
    }
}

/// Where "now" comes from: the system in production; a test sets it to run the dispatcher
/// and the worker at a chosen time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that says what it is told.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self(std::sync::Mutex::new(at))
    }

    pub fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
