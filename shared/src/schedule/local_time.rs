//! A send request's `send_at` and the time zone(s) it is read in.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp};
use serde::{Deserialize, Serialize};

use super::zones::zones_for_number;

/// When to send, as the caller wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendAt {
    /// An RFC 3339 instant with an offset: the zone is irrelevant.
    Instant(Timestamp),
    /// A wall-clock date-time without an offset, read in the recipient's
    /// zone by [`resolve`] — "09:00 for them", whatever the UTC offset is
    /// that day.
    Local(DateTime),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendAtError {
    #[error(
        "send_at {0:?} must be an RFC 3339 instant with an offset \
         (e.g. 2026-12-01T09:00:00Z or 2026-12-01T09:00:00-05:00), \
         or a local date-time like 2026-12-01T09:00"
    )]
    Malformed(String),
    #[error(
        "send_at {0:?}: time zone annotations like [Europe/Berlin] are not \
         supported; give an offset, or a local date-time and time_zone"
    )]
    Annotation(String),
    #[error("send_at {input:?} is not a valid date-time: {reason}")]
    Invalid { input: String, reason: &'static str },
    #[error("send_at must be at most {MAX_YEARS_AHEAD} years ahead")]
    TooFarAhead,
    #[error("send_at must not be before 2000-01-01T00:00:00Z")]
    TooEarly,
}

/// Far enough for any real campaign; further is almost surely a typo'd year
/// that would otherwise park a message in the queue forever.
pub const MAX_YEARS_AHEAD: i64 = 10;

/// 2000-01-01T00:00:00Z. Earlier is a typo or a clock bug, not "send now".
const EARLIEST: Timestamp = Timestamp::constant(946_684_800, 0);

/// Inputs are echoed in errors returned to API callers; cap what we echo.
const ECHO_MAX_CHARS: usize = 64;

fn echo(s: &str) -> String {
    match s.char_indices().nth(ECHO_MAX_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl SendAt {
    /// Accepts exactly:
    ///
    /// * `YYYY-MM-DDTHH:MM[:SS[.fraction]]` followed by `Z` or `±HH:MM` →
    ///   [`SendAt::Instant`] (RFC 3339; seconds may be omitted, `t`/`z` and a
    ///   space for `T` are accepted as RFC 3339 allows, a leap second `:60`
    ///   is read as `:59`);
    /// * the same without an offset → [`SendAt::Local`].
    ///
    /// Everything else is refused: a bare date (no time of day to pick), a
    /// bracketed zone annotation (it would compete with the request's
    /// `time_zone`), years 0000 and out-of-range fields.
    pub fn parse(input: &str) -> Result<SendAt, SendAtError> {
        if let Some(i) = input.find('[') {
            // Say why only when the rest is a usable date-time.
            return Err(if Syntax::scan(&input.as_bytes()[..i]).is_some() {
                SendAtError::Annotation(echo(input))
            } else {
                SendAtError::Malformed(echo(input))
            });
        }
        let syntax =
            Syntax::scan(input.as_bytes()).ok_or_else(|| SendAtError::Malformed(echo(input)))?;
        let invalid = |reason| SendAtError::Invalid {
            input: echo(input),
            reason,
        };
        if syntax.year == 0 {
            return Err(invalid("year must be 0001 or later"));
        }
        if !(1..=12).contains(&syntax.month) {
            return Err(invalid("month must be 01 to 12"));
        }
        let date = Date::new(syntax.year, syntax.month, syntax.day)
            .map_err(|_| invalid("that day does not exist in that month"))?;
        if syntax.hour > 23 {
            return Err(invalid("hour must be 00 to 23"));
        }
        if syntax.minute > 59 {
            return Err(invalid("minute must be 00 to 59"));
        }
        if syntax.second > 60 {
            return Err(invalid("second must be 00 to 59"));
        }
        // RFC 3339 allows a leap second; jiff (like POSIX time) has none.
        let second = syntax.second.min(59);
        let time = Time::new(syntax.hour, syntax.minute, second, syntax.nanos)
            .map_err(|_| invalid("time of day out of range"))?;
        let dt = date.to_datetime(time);
        match syntax.offset {
            None => Ok(SendAt::Local(dt)),
            Some((hours, minutes, sign)) => {
                if hours > 23 || minutes > 59 {
                    return Err(invalid("offset must be between -23:59 and +23:59"));
                }
                let secs = i32::from(sign) * (i32::from(hours) * 3600 + i32::from(minutes) * 60);
                let offset =
                    Offset::from_seconds(secs).map_err(|_| invalid("offset out of range"))?;
                offset
                    .to_timestamp(dt)
                    .map(SendAt::Instant)
                    .map_err(|_| invalid("instant out of range"))
            }
        }
    }
}

impl FromStr for SendAt {
    type Err = SendAtError;

    fn from_str(s: &str) -> Result<SendAt, SendAtError> {
        SendAt::parse(s)
    }
}

impl fmt::Display for SendAt {
    /// `2026-12-01T14:00:00Z` or `2026-12-01T09:00:00`; both parse back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendAt::Instant(ts) => write!(f, "{ts}"),
            SendAt::Local(dt) => write!(f, "{dt}"),
        }
    }
}

/// The fields of an input that has the right shape; values not yet checked.
struct Syntax {
    year: i16,
    month: i8,
    day: i8,
    hour: i8,
    minute: i8,
    second: i8,
    nanos: i32,
    /// (hours, minutes, sign)
    offset: Option<(i8, i8, i8)>,
}

impl Syntax {
    fn scan(b: &[u8]) -> Option<Syntax> {
        let mut p = Cursor { b, i: 0 };
        let year = p.digits(4)? as i16;
        p.byte(b'-')?;
        let month = p.digits(2)? as i8;
        p.byte(b'-')?;
        let day = p.digits(2)? as i8;
        match p.next()? {
            b'T' | b't' | b' ' => {}
            _ => return None,
        }
        let hour = p.digits(2)? as i8;
        p.byte(b':')?;
        let minute = p.digits(2)? as i8;
        let (mut second, mut nanos) = (0, 0);
        if p.peek() == Some(b':') {
            p.i += 1;
            second = p.digits(2)? as i8;
            if matches!(p.peek(), Some(b'.' | b',')) {
                p.i += 1;
                let start = p.i;
                while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                    p.i += 1;
                }
                let n = p.i - start;
                if n == 0 || n > 9 {
                    return None;
                }
                let frac = std::str::from_utf8(&b[start..p.i]).ok()?;
                nanos = frac.parse::<i32>().ok()? * 10i32.pow(9 - n as u32);
            }
        }
        let offset = match p.next() {
            None => None,
            Some(b'Z' | b'z') => Some((0, 0, 1)),
            Some(sign @ (b'+' | b'-')) => {
                let h = p.digits(2)? as i8;
                p.byte(b':')?;
                let m = p.digits(2)? as i8;
                Some((h, m, if sign == b'-' { -1 } else { 1 }))
            }
            Some(_) => return None,
        };
        if p.i != b.len() {
            return None;
        }
        Some(Syntax {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset,
        })
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let mut v = 0;
        for _ in 0..n {
            let c = self.next()?;
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }
}

/// The instant `send_at` designates: `Local` is read as wall-clock time in
/// `zone` with jiff's "compatible" disambiguation — a time skipped by a
/// spring-forward gap moves forward by the gap (02:30 → 03:30), a time
/// repeated by a fall-back fold takes the first (daylight) occurrence.
///
/// A past instant is fine (the caller sends now); more than
/// [`MAX_YEARS_AHEAD`] calendar years after `now`, or before 2000, is refused.
pub fn resolve(
    send_at: &SendAt,
    zone: &TimeZone,
    now: Timestamp,
) -> Result<Timestamp, SendAtError> {
    let ts = match *send_at {
        SendAt::Instant(ts) => ts,
        // Only fails at the ends of jiff's range (years ±9999).
        SendAt::Local(dt) => zone.to_timestamp(dt).map_err(|_| {
            if dt.year() < 2000 {
                SendAtError::TooEarly
            } else {
                SendAtError::TooFarAhead
            }
        })?,
    };
    if ts < EARLIEST {
        return Err(SendAtError::TooEarly);
    }
    // Calendar years in UTC, so "10 years from 2026-02-28" is 2036-02-28.
    let limit = Offset::UTC
        .to_datetime(now)
        .checked_add(Span::new().years(MAX_YEARS_AHEAD))
        .ok()
        .and_then(|dt| Offset::UTC.to_timestamp(dt).ok())
        .unwrap_or(Timestamp::MAX);
    if ts > limit {
        return Err(SendAtError::TooFarAhead);
    }
    Ok(ts)
}

/// Where the zone(s) used for a message came from; returned by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ZoneSource {
    Request,
    Tenant,
    Number,
    Default,
}

/// The zone set a message is scheduled against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zones {
    /// Never empty when built by [`choose`]. Quiet hours must hold in every
    /// zone; a `Local` send_at is read in the first ([`Zones::primary`]).
    pub zones: Vec<TimeZone>,
    pub source: ZoneSource,
}

static UTC: TimeZone = TimeZone::UTC;

impl Zones {
    /// The zone a `Local` send_at is read in: the first one. For a number
    /// mapping to several zones the data lists them alphabetically, so this
    /// is arbitrary but stable; callers who care pass a zone in the request.
    /// UTC if `zones` is empty (only possible for a hand-built value).
    pub fn primary(&self) -> &TimeZone {
        self.zones.first().unwrap_or(&UTC)
    }

    /// [`resolve`] in [`Zones::primary`].
    pub fn resolve(&self, send_at: &SendAt, now: Timestamp) -> Result<Timestamp, SendAtError> {
        resolve(send_at, self.primary(), now)
    }

    /// For the API's `time_zone` field: the IANA name, or the names joined
    /// with `,` when the number maps to several zones.
    pub fn name(&self) -> String {
        let mut out = String::new();
        for (i, tz) in self.zones.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&zone_name(tz));
        }
        out
    }
}

/// IANA name when there is one; otherwise something still meaningful in an
/// API response (a fixed offset such as `+05:30`, or `Etc/Unknown`).
pub fn zone_name(tz: &TimeZone) -> Cow<'_, str> {
    if let Some(name) = tz.iana_name() {
        return Cow::Borrowed(name);
    }
    if tz.is_unknown() {
        return Cow::Borrowed("Etc/Unknown");
    }
    match tz.to_fixed_offset() {
        Ok(offset) => Cow::Owned(offset.to_string()),
        Err(_) => Cow::Borrowed("Etc/Unknown"),
    }
}

/// Precedence: the request's zone, then the tenant's, then every zone the
/// number's prefix maps to, then `default`. The first two are explicit human
/// choices; the number's zones are a guess, and the default only keeps quiet
/// hours meaningful when even the guess fails.
pub fn choose(
    request: Option<&TimeZone>,
    tenant: Option<&TimeZone>,
    e164: &str,
    default: &TimeZone,
) -> Zones {
    let (zones, source) = if let Some(tz) = request {
        (vec![tz.clone()], ZoneSource::Request)
    } else if let Some(tz) = tenant {
        (vec![tz.clone()], ZoneSource::Tenant)
    } else {
        match zones_for_number(e164) {
            [] => (vec![default.clone()], ZoneSource::Default),
            found => (found.to_vec(), ZoneSource::Number),
        }
    };
    Zones { zones, source }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error("unknown time zone {0:?}: expected an IANA name like America/New_York")]
    Unknown(String),
}

/// An IANA zone name from a request or tenant config (case-insensitive, as
/// in the tz database; `UTC` is accepted). Offsets, POSIX TZ strings and
/// `Etc/Unknown` are refused.
pub fn parse_zone(name: &str) -> Result<TimeZone, ZoneError> {
    let trimmed = name.trim();
    let looks_iana = !trimmed.is_empty()
        && trimmed.len() <= 64
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
    match looks_iana.then(|| TimeZone::get(trimmed)) {
        Some(Ok(tz)) if !tz.is_unknown() && tz.iana_name().is_some() => Ok(tz),
        _ => Err(ZoneError::Unknown(echo(name))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn local(s: &str) -> SendAt {
        match SendAt::parse(s).unwrap() {
            l @ SendAt::Local(_) => l,
            other => panic!("{s} parsed as {other:?}"),
        }
    }

    fn now() -> Timestamp {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn parse_instants() {
        let cases = [
            ("2026-12-01T09:00:00Z", "2026-12-01T09:00:00Z"),
            ("2026-12-01T09:00:00-05:00", "2026-12-01T14:00:00Z"),
            ("2026-12-01T09:00:00+05:30", "2026-12-01T03:30:00Z"),
            ("2026-12-01T09:00:00.5Z", "2026-12-01T09:00:00.5Z"),
            ("2026-12-01T09:00:00,25+01:00", "2026-12-01T08:00:00.25Z"),
            (
                "2026-12-01T09:00:00.123456789Z",
                "2026-12-01T09:00:00.123456789Z",
            ),
            ("2026-12-01t09:00:00z", "2026-12-01T09:00:00Z"),
            ("2026-12-01 09:00:00Z", "2026-12-01T09:00:00Z"),
            ("2026-12-01T09:00Z", "2026-12-01T09:00:00Z"),
            ("2026-12-31T23:59:60Z", "2026-12-31T23:59:59Z"),
        ];
        for (input, want) in cases {
            match SendAt::parse(input) {
                Ok(SendAt::Instant(ts)) => assert_eq!(ts.to_string(), want, "{input}"),
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn parse_local() {
        assert_eq!(
            SendAt::parse("2026-12-01T09:00").unwrap(),
            SendAt::Local(date(2026, 12, 1).at(9, 0, 0, 0))
        );
        assert_eq!(
            SendAt::parse("2026-12-01T09:00:30.25").unwrap(),
            SendAt::Local(date(2026, 12, 1).at(9, 0, 30, 250_000_000))
        );
        assert_eq!(
            "2028-02-29T09:00".parse::<SendAt>().unwrap().to_string(),
            "2028-02-29T09:00:00"
        );
        // Display round-trips.
        for s in ["2026-12-01T09:00:00-05:00", "2026-12-01T09:00"] {
            let v = SendAt::parse(s).unwrap();
            assert_eq!(SendAt::parse(&v.to_string()).unwrap(), v);
        }
    }

    #[test]
    fn parse_errors_are_typed_and_readable() {
        let malformed = [
            "",
            "2026-12-01",
            "tomorrow",
            "2026-12-01T9:00",
            "2026-12-01T09",
            "26-12-01T09:00",
            "2026-12-1T09:00",
            "2026-12-01T09:00:00+0500",
            "2026-12-01T09:00:00+05",
            "2026-12-01T09:00:00.Z",
            "2026-12-01T09:00:00.1234567890Z",
            "2026-12-01T09:00:00Z ",
            " 2026-12-01T09:00:00Z",
            "2026-12-01T09:00:00 UTC",
            "+002026-12-01T09:00:00Z",
            "1764579600",
            "２０２６-12-01T09:00",
        ];
        for s in malformed {
            let err = SendAt::parse(s).unwrap_err();
            assert_eq!(err, SendAtError::Malformed(s.to_owned()), "{s}");
            let msg = err.to_string();
            assert!(
                msg.contains("must be an RFC 3339 instant with an offset")
                    && msg.contains("or a local date-time like 2026-12-01T09:00"),
                "{msg}"
            );
        }
        let err = SendAt::parse("2026-12-01T09:00:00-05:00[America/New_York]").unwrap_err();
        assert!(matches!(err, SendAtError::Annotation(_)));
        assert!(err.to_string().contains("not supported"), "{err}");
        assert!(matches!(
            SendAt::parse("2026-12-01T09:00[Europe/Berlin]"),
            Err(SendAtError::Annotation(_))
        ));
        assert!(matches!(
            SendAt::parse("[Europe/Berlin]"),
            Err(SendAtError::Malformed(_))
        ));

        let invalid = [
            ("0000-12-01T09:00", "year must be 0001 or later"),
            ("2026-13-01T09:00", "month must be 01 to 12"),
            ("2026-00-01T09:00", "month must be 01 to 12"),
            ("2026-02-29T09:00", "that day does not exist in that month"),
            ("2026-04-31T09:00Z", "that day does not exist in that month"),
            ("2026-12-01T25:00", "hour must be 00 to 23"),
            ("2026-12-01T24:00", "hour must be 00 to 23"),
            ("2026-12-01T09:60", "minute must be 00 to 59"),
            ("2026-12-01T09:00:61Z", "second must be 00 to 59"),
            (
                "2026-12-01T09:00:00+24:00",
                "offset must be between -23:59 and +23:59",
            ),
            ("9999-12-31T23:00:00-05:00", "instant out of range"),
        ];
        for (s, reason) in invalid {
            let err = SendAt::parse(s).unwrap_err();
            assert_eq!(
                err,
                SendAtError::Invalid {
                    input: s.to_owned(),
                    reason
                },
                "{s}"
            );
            assert_eq!(
                err.to_string(),
                format!("send_at {s:?} is not a valid date-time: {reason}")
            );
        }
    }

    #[test]
    fn long_garbage_is_not_echoed_whole() {
        let junk = "x".repeat(10_000);
        let msg = SendAt::parse(&junk).unwrap_err().to_string();
        assert!(msg.len() < 300, "{}", msg.len());
        assert!(msg.contains('…'));
    }

    /// Local 09:00 on the day before and after each 2027 DST change stays
    /// 09:00 local, with the UTC offset changing underneath.
    #[test]
    fn local_time_is_kept_across_2027_dst_changes() {
        let cases = [
            // zone, day before, day after, offset before, offset after (hours)
            ("America/New_York", "2027-03-13", "2027-03-15", -5, -4),
            ("America/New_York", "2027-11-06", "2027-11-08", -4, -5),
            ("America/Los_Angeles", "2027-03-13", "2027-03-15", -8, -7),
            ("America/Los_Angeles", "2027-11-06", "2027-11-08", -7, -8),
            ("Europe/Lisbon", "2027-03-27", "2027-03-29", 0, 1),
            ("Europe/Lisbon", "2027-10-30", "2027-11-01", 1, 0),
            ("Europe/Berlin", "2027-03-27", "2027-03-29", 1, 2),
            ("Europe/Berlin", "2027-10-30", "2027-11-01", 2, 1),
        ];
        for (zone, before, after, off_before, off_after) in cases {
            let z = tz(zone);
            for (day, off) in [(before, off_before), (after, off_after)] {
                let ts = resolve(&local(&format!("{day}T09:00")), &z, now()).unwrap();
                let dt = z.to_datetime(ts);
                assert_eq!(dt.to_string(), format!("{day}T09:00:00"), "{zone}");
                assert_eq!(z.to_offset(ts).seconds(), off * 3600, "{zone} {day}");
                // And the UTC instant is 09:00 minus the offset.
                let utc = Offset::UTC.to_datetime(ts);
                assert_eq!(
                    i32::from(utc.hour()),
                    (9 - off).rem_euclid(24),
                    "{zone} {day}"
                );
            }
        }
    }

    #[test]
    fn gap_moves_forward_and_fold_takes_the_earlier_instant() {
        let ny = tz("America/New_York");
        // 02:30 does not exist on 2027-03-14 in New York: → 03:30 EDT.
        let ts = resolve(&local("2027-03-14T02:30"), &ny, now()).unwrap();
        assert_eq!(ny.to_datetime(ts), date(2027, 3, 14).at(3, 30, 0, 0));
        assert_eq!(ts.to_string(), "2027-03-14T07:30:00Z");
        // 01:30 happens twice on 2027-11-07: the first is 01:30 EDT.
        let ts = resolve(&local("2027-11-07T01:30"), &ny, now()).unwrap();
        assert_eq!(ts.to_string(), "2027-11-07T05:30:00Z");
        // Europe: 01:30 does not exist in Lisbon on 2027-03-28 (01:00 → 02:00);
        // 02:30 repeats in Berlin on 2027-10-31.
        let lis = tz("Europe/Lisbon");
        let ts = resolve(&local("2027-03-28T01:30"), &lis, now()).unwrap();
        assert_eq!(lis.to_datetime(ts), date(2027, 3, 28).at(2, 30, 0, 0));
        let ber = tz("Europe/Berlin");
        let ts = resolve(&local("2027-10-31T02:30"), &ber, now()).unwrap();
        assert_eq!(ts.to_string(), "2027-10-31T00:30:00Z");
    }

    #[test]
    fn instants_ignore_the_zone() {
        let at = SendAt::parse("2026-12-01T09:00:00-05:00").unwrap();
        let a = resolve(&at, &tz("Asia/Tokyo"), now()).unwrap();
        let b = resolve(&at, &tz("America/Denver"), now()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2026-12-01T14:00:00Z");
    }

    #[test]
    fn absurd_instants_are_refused_but_the_past_is_not() {
        let utc = TimeZone::UTC;
        let now = now();
        // Past, even years past: the caller sends now.
        let past = SendAt::parse("2020-01-01T00:00:00Z").unwrap();
        assert_eq!(
            resolve(&past, &utc, now).unwrap().to_string(),
            "2020-01-01T00:00:00Z"
        );
        assert_eq!(resolve(&SendAt::Instant(now), &utc, now), Ok(now));
        // Exactly 10 calendar years ahead is fine; a second more is not.
        let edge = SendAt::parse("2036-11-30T12:00:00Z").unwrap();
        assert!(resolve(&edge, &utc, now).is_ok());
        let over = SendAt::parse("2036-11-30T12:00:01Z").unwrap();
        assert_eq!(resolve(&over, &utc, now), Err(SendAtError::TooFarAhead));
        assert_eq!(
            SendAtError::TooFarAhead.to_string(),
            "send_at must be at most 10 years ahead"
        );
        let far = local("9999-12-31T23:00");
        assert_eq!(
            resolve(&far, &tz("Asia/Tokyo"), now),
            Err(SendAtError::TooFarAhead)
        );
        // Before 2000.
        let old = SendAt::parse("1999-12-31T23:59:59Z").unwrap();
        assert_eq!(resolve(&old, &utc, now), Err(SendAtError::TooEarly));
        let ok = SendAt::parse("2000-01-01T00:00:00Z").unwrap();
        assert!(resolve(&ok, &utc, now).is_ok());
        assert_eq!(
            resolve(&local("0001-01-01T00:00"), &utc, now),
            Err(SendAtError::TooEarly)
        );
    }

    #[test]
    fn zone_precedence() {
        let req = tz("Europe/Berlin");
        let ten = tz("Asia/Tokyo");
        let def = tz("UTC");
        let sf = "+14155552671";

        let z = choose(Some(&req), Some(&ten), sf, &def);
        assert_eq!(
            (z.source, z.name()),
            (ZoneSource::Request, "Europe/Berlin".into())
        );

        let z = choose(None, Some(&ten), sf, &def);
        assert_eq!(
            (z.source, z.name()),
            (ZoneSource::Tenant, "Asia/Tokyo".into())
        );

        let z = choose(None, None, sf, &def);
        assert_eq!(
            (z.source, z.name()),
            (ZoneSource::Number, "America/Los_Angeles".into())
        );

        let z = choose(None, None, "+5500000000", &def);
        assert_eq!(z.source, ZoneSource::Number);
        assert_eq!(z.zones.len(), 4);
        assert_eq!(
            z.name(),
            "America/Manaus,America/Noronha,America/Rio_Branco,America/Sao_Paulo"
        );
        assert_eq!(z.primary().iana_name(), Some("America/Manaus"));

        for unknown in ["+999123", "not a number", ""] {
            let z = choose(None, None, unknown, &def);
            assert_eq!(
                (z.source, z.name()),
                (ZoneSource::Default, "UTC".into()),
                "{unknown}"
            );
        }
    }

    #[test]
    fn local_send_at_uses_the_first_number_zone() {
        // +351 9… maps to Atlantic/Azores and Europe/Lisbon: 09:00 is read in
        // the Azores (UTC−1 in winter), not Lisbon (UTC+0).
        let z = choose(None, None, "+351912345678", &TimeZone::UTC);
        assert_eq!(z.name(), "Atlantic/Azores,Europe/Lisbon");
        let ts = z.resolve(&local("2026-12-01T09:00"), now()).unwrap();
        assert_eq!(ts.to_string(), "2026-12-01T10:00:00Z");
        let empty = Zones {
            zones: vec![],
            source: ZoneSource::Default,
        };
        assert_eq!(empty.primary(), &TimeZone::UTC);
        assert_eq!(empty.name(), "");
    }

    #[test]
    fn zone_source_serde_is_lowercase() {
        for (s, v) in [
            ("\"request\"", ZoneSource::Request),
            ("\"tenant\"", ZoneSource::Tenant),
            ("\"number\"", ZoneSource::Number),
            ("\"default\"", ZoneSource::Default),
        ] {
            assert_eq!(serde_json::to_string(&v).unwrap(), s);
            assert_eq!(serde_json::from_str::<ZoneSource>(s).unwrap(), v);
        }
        assert!(serde_json::from_str::<ZoneSource>("\"Request\"").is_err());
    }

    #[test]
    fn parse_zone_accepts_iana_and_names_the_unknown() {
        assert_eq!(
            parse_zone("Europe/Lisbon").unwrap().iana_name(),
            Some("Europe/Lisbon")
        );
        assert_eq!(
            parse_zone("america/new_york").unwrap().iana_name(),
            Some("America/New_York")
        );
        assert_eq!(parse_zone(" UTC ").unwrap(), TimeZone::UTC);
        assert!(parse_zone("America/Argentina/Buenos_Aires").is_ok());
        assert!(parse_zone("Etc/GMT+5").is_ok());
        for bad in [
            "Mars/Olympus",
            "",
            "Etc/Unknown",
            "+05:00",
            "EST5EDT,M3.2.0,M11.1.0",
            "../etc/passwd",
        ] {
            let err = parse_zone(bad).unwrap_err();
            assert_eq!(err, ZoneError::Unknown(bad.to_owned()), "{bad}");
        }
        assert_eq!(
            parse_zone("Mars/Olympus").unwrap_err().to_string(),
            "unknown time zone \"Mars/Olympus\": expected an IANA name like America/New_York"
        );
    }

    #[test]
    fn zone_name_without_iana_name() {
        let fixed = TimeZone::fixed(jiff::tz::offset(5));
        assert_eq!(zone_name(&fixed), "+05");
        assert_eq!(zone_name(&TimeZone::unknown()), "Etc/Unknown");
    }
}
