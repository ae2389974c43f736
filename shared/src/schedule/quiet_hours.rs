//! Quiet hours: when may a message reach a phone, given the recipient's
//! local time?

use std::fmt;
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

/// The local-time window in which sending is ALLOWED: `start <= t < end`.
///
/// `start > end` crosses midnight (22:00–06:00 allows the night). The fields
/// are public for pattern matching and config round-trips; a window built
/// directly with `start == end` (which [`Window::new`] refuses) allows every
/// time of day rather than none, so a bad literal can never stall delivery
/// forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: Time,
    pub end: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "quiet-hours window is empty: start and end are both {0}; \
         use different times (e.g. 08:00 and 21:00)"
    )]
    Empty(HhMm),
    #[error("invalid quiet-hours {field} {value:?}: expected HH:MM in 24-hour time, e.g. 08:00")]
    Parse { field: &'static str, value: String },
}

/// Displays a [`Time`] as `HH:MM` (with `:SS` only when non-zero) in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HhMm(pub Time);

impl fmt::Display for HhMm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0.hour(), self.0.minute())?;
        if self.0.second() != 0 || self.0.subsec_nanosecond() != 0 {
            write!(f, ":{:02}", self.0.second())?;
        }
        Ok(())
    }
}

impl Default for Window {
    fn default() -> Window {
        Window::DEFAULT
    }
}

impl Window {
    /// 08:00–21:00 local.
    pub const DEFAULT: Window = Window {
        start: Time::constant(8, 0, 0, 0),
        end: Time::constant(21, 0, 0, 0),
    };

    pub fn new(start: Time, end: Time) -> Result<Window, WindowError> {
        if start == end {
            return Err(WindowError::Empty(HhMm(start)));
        }
        Ok(Window { start, end })
    }

    /// From config strings, `HH:MM` 24-hour (`"08:00"`, `"21:00"`). `end` may
    /// be `"24:00"`, meaning midnight at the end of the day.
    pub fn parse(start: &str, end: &str) -> Result<Window, WindowError> {
        let s = parse_hh_mm(start, false).ok_or_else(|| WindowError::Parse {
            field: "start",
            value: start.to_owned(),
        })?;
        let e = parse_hh_mm(end, true).ok_or_else(|| WindowError::Parse {
            field: "end",
            value: end.to_owned(),
        })?;
        if s == Time::MIN && end.trim() == "24:00" {
            // 00:00–24:00: quiet hours never close (start == end allows every time of day).
            return Ok(Window { start: s, end: e });
        }
        Window::new(s, e)
    }

    /// Whether sending is allowed at local time `t`.
    #[inline]
    pub fn contains(&self, t: Time) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            // Crosses midnight (or, for a hand-built start == end, always).
            t >= self.start || t < self.end
        }
    }
}

fn parse_hh_mm(s: &str, allow_24: bool) -> Option<Time> {
    let b = s.trim().as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<i8> {
        let (h, l) = (b[i], b[i + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| ((h - b'0') * 10 + (l - b'0')) as i8)
    };
    let (h, m) = (two(0)?, two(3)?);
    if allow_24 && h == 24 && m == 0 {
        // 21:00–24:00 is the same window as 21:00–00:00 (crossing form).
        return Some(Time::MIN);
    }
    Time::new(h, m, 0, 0).ok()
}

/// Beyond this, a zone set is declared never-open: a sane window in real zones
/// opens within two days even across DST, so eight days only bounds the loop
/// for zone sets whose windows never overlap.
const HORIZON: SignedDuration = SignedDuration::from_hours(8 * 24);

/// The earliest instant `>= at` whose local time is inside `window` in every
/// zone of `zones`; `at` itself when already allowed.
///
/// Exact, DST included: a window that starts inside a spring-forward gap
/// opens at the transition itself (clocks read past `start` from then on),
/// and a fall-back fold that re-enters the window is found too.
///
/// `None` when the zones' windows do not overlap within eight days (e.g. an
/// 08:00–19:00 window in Asia/Tokyo and America/Sao_Paulo, 12 hours apart),
/// or at the end of jiff's time range. Empty `zones` means no constraint:
/// `Some(at)`; callers that want a fallback pass a default zone.
pub fn next_allowed(at: Timestamp, window: &Window, zones: &[TimeZone]) -> Option<Timestamp> {
    match zones {
        [] => Some(at),
        [tz] => next_in_zone(at, window, tz, horizon(at)),
        _ => next_in_all(at, window, zones, horizon(at)),
    }
}

fn horizon(at: Timestamp) -> Timestamp {
    at.checked_add(HORIZON).unwrap_or(Timestamp::MAX)
}

/// Fixpoint over the zones: each zone's next opening from `t` is a lower
/// bound for the common answer, so `t` only ever moves to such bounds, and
/// once every zone accepts `t` unchanged it is the earliest common instant.
fn next_in_all(
    at: Timestamp,
    window: &Window,
    zones: &[TimeZone],
    limit: Timestamp,
) -> Option<Timestamp> {
    let mut t = at;
    let mut accepted = 0;
    for tz in zones.iter().cycle() {
        let next = next_in_zone(t, window, tz, limit)?;
        if next == t {
            accepted += 1;
            if accepted == zones.len() {
                return Some(t);
            }
        } else {
            t = next;
            accepted = 1;
        }
    }
    unreachable!("cycle() over a non-empty slice never ends")
}

/// One zone, exactly. Between two offset transitions local time is
/// `instant + offset`, so within such a segment the window opens where the
/// local clock reads `start`; if a transition comes first, the clock may jump
/// into (or past) the window there, so resume the search at the transition.
fn next_in_zone(
    at: Timestamp,
    window: &Window,
    tz: &TimeZone,
    limit: Timestamp,
) -> Option<Timestamp> {
    let mut t = at;
    loop {
        let offset = tz.to_offset(t);
        let local = offset.to_datetime(t);
        if window.contains(local.time()) {
            return Some(t);
        }
        // Outside the window: either before today's start, or (for a window
        // that does not cross midnight) after today's end.
        let day = if local.time() < window.start {
            local.date()
        } else {
            local.date().tomorrow().ok()?
        };
        let open = offset.to_timestamp(day.to_datetime(window.start)).ok()?;
        match tz.following(t).next() {
            Some(tr) if tr.timestamp() <= open => t = tr.timestamp(),
            _ => return (open <= limit).then_some(open),
        }
        if t > limit {
            return None;
        }
    }
}

/// A deterministic offset in `[0, max)` for `message_id`: the first 128 bits
/// of its SHA-256, reduced modulo `max` in nanoseconds.
///
/// Releasing a night's backlog at `next_allowed + spread(id, max)` smears it
/// over `max` instead of one second at 08:00, and a retry or a second worker
/// computes the same instant for the same message. Modulo bias is below
/// 2^-30 for any `max` under 34 years, i.e. irrelevant. `max == 0` → zero.
pub fn spread(message_id: &str, max: Duration) -> Duration {
    let max_ns = max.as_nanos();
    if max_ns == 0 {
        return Duration::ZERO;
    }
    let digest = Sha256::digest(message_id.as_bytes());
    let mut head = [0u8; 16];
    head.copy_from_slice(&digest[..16]);
    let ns = u128::from_be_bytes(head) % max_ns;
    // ns < max_ns, so the seconds fit in u64 just as max's did.
    Duration::new((ns / 1_000_000_000) as u64, (ns % 1_000_000_000) as u32)
}

/// When a message held by quiet hours should be released: the next allowed
/// instant plus the message's [`spread`], unless that would land outside the
/// window (a spread longer than what is left of the common window, e.g. the
/// short overlap of many zones), in which case the unspread instant.
///
/// Always returns an instant [`next_allowed`] accepts unchanged, so the
/// claim-time re-check agrees with it instead of deferring the message a day
/// (and, with the same spread the next day, forever). A message not held
/// (`at` already allowed) gets no spread: it is not part of a backlog.
pub fn release_at(
    at: Timestamp,
    window: &Window,
    zones: &[TimeZone],
    message_id: &str,
    max_spread: Duration,
) -> Option<Timestamp> {
    let open = next_allowed(at, window, zones)?;
    if open == at {
        return Some(at);
    }
    let spread = SignedDuration::try_from(spread(message_id, max_spread)).ok();
    let spread_at = spread.and_then(|d| open.checked_add(d).ok());
    match spread_at {
        Some(t) if next_allowed(t, window, zones) == Some(t) => Some(t),
        _ => Some(open),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight_to_midnight_is_always_open() {
        let all_day = Window::parse("00:00", "24:00").unwrap();
        for hour in 0..24 {
            assert!(all_day.contains(Time::new(hour, 30, 0, 0).unwrap()));
        }
        assert!(Window::parse("08:00", "08:00").is_err());
    }
    use jiff::civil::{date, time, DateTime};

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    /// `dt` read as wall-clock time in `zone` (earlier instant in a fold).
    fn at(zone: &str, dt: DateTime) -> Timestamp {
        tz(zone).to_timestamp(dt).unwrap()
    }

    fn local(zone: &str, ts: Timestamp) -> DateTime {
        tz(zone).to_datetime(ts)
    }

    fn next1(ts: Timestamp, w: &Window, zone: &str) -> DateTime {
        local(zone, next_allowed(ts, w, &[tz(zone)]).unwrap())
    }

    const NY: &str = "America/New_York";

    #[test]
    fn window_new_and_parse() {
        let w = Window::parse("08:00", "21:00").unwrap();
        assert_eq!(w, Window::DEFAULT);
        assert_eq!(Window::default(), Window::DEFAULT);
        assert_eq!(
            Window::parse(" 22:30 ", "06:00").unwrap(),
            Window {
                start: time(22, 30, 0, 0),
                end: time(6, 0, 0, 0)
            }
        );
        let err = Window::new(time(8, 0, 0, 0), time(8, 0, 0, 0)).unwrap_err();
        assert_eq!(err, WindowError::Empty(HhMm(time(8, 0, 0, 0))));
        assert!(err.to_string().contains("both 08:00"), "{err}");
        assert!(matches!(
            Window::parse("09:00", "09:00"),
            Err(WindowError::Empty(_))
        ));
        for bad in [
            "8:00", "08:0", "0800", "24:00", "08:60", "ab:cd", "", "08:00:00", "-1:00",
        ] {
            let err = Window::parse(bad, "21:00").unwrap_err();
            assert_eq!(
                err,
                WindowError::Parse {
                    field: "start",
                    value: bad.to_owned()
                }
            );
            assert!(err.to_string().contains("expected HH:MM"), "{err}");
        }
        let err = Window::parse("08:00", "25:00").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid quiet-hours end \"25:00\""),
            "{err}"
        );
        // 24:00 is accepted as the end of the day only.
        let w = Window::parse("21:00", "24:00").unwrap();
        assert!(w.contains(time(23, 59, 59, 999_999_999)));
        assert!(!w.contains(time(0, 0, 0, 0)));
        assert!(!w.contains(time(20, 59, 0, 0)));
    }

    #[test]
    fn contains_is_half_open() {
        let w = Window::DEFAULT;
        assert!(!w.contains(time(7, 59, 59, 999_999_999)));
        assert!(w.contains(time(8, 0, 0, 0)));
        assert!(w.contains(time(20, 59, 59, 999_999_999)));
        assert!(!w.contains(time(21, 0, 0, 0)));
        let night = Window::new(time(22, 0, 0, 0), time(6, 0, 0, 0)).unwrap();
        assert!(night.contains(time(23, 0, 0, 0)));
        assert!(night.contains(time(0, 0, 0, 0)));
        assert!(night.contains(time(5, 59, 0, 0)));
        assert!(!night.contains(time(6, 0, 0, 0)));
        assert!(!night.contains(time(12, 0, 0, 0)));
        // Hand-built degenerate window: always open, never stuck.
        let all = Window {
            start: time(8, 0, 0, 0),
            end: time(8, 0, 0, 0),
        };
        assert!(all.contains(time(3, 0, 0, 0)) && all.contains(time(8, 0, 0, 0)));
    }

    #[test]
    fn one_zone_basic_cases() {
        let w = Window::DEFAULT;
        let d = date(2026, 12, 1);
        // 23:00 → next day 08:00.
        assert_eq!(
            next1(at(NY, d.at(23, 0, 0, 0)), &w, NY),
            date(2026, 12, 2).at(8, 0, 0, 0)
        );
        // 07:59 → 08:00 same day.
        assert_eq!(next1(at(NY, d.at(7, 59, 0, 0)), &w, NY), d.at(8, 0, 0, 0));
        // Already allowed → unchanged, to the nanosecond.
        let noon = at(NY, d.at(12, 0, 0, 123));
        assert_eq!(next_allowed(noon, &w, &[tz(NY)]), Some(noon));
        // 08:00 exactly is allowed; 21:00 exactly is not.
        let eight = at(NY, d.at(8, 0, 0, 0));
        assert_eq!(next_allowed(eight, &w, &[tz(NY)]), Some(eight));
        assert_eq!(
            next1(at(NY, d.at(21, 0, 0, 0)), &w, NY),
            date(2026, 12, 2).at(8, 0, 0, 0)
        );
        // Just after midnight → same calendar day 08:00.
        assert_eq!(next1(at(NY, d.at(0, 0, 1, 0)), &w, NY), d.at(8, 0, 0, 0));
        // Month and year roll-over.
        assert_eq!(
            next1(at(NY, date(2026, 12, 31).at(22, 0, 0, 0)), &w, NY),
            date(2027, 1, 1).at(8, 0, 0, 0)
        );
    }

    #[test]
    fn empty_zone_list_means_allowed() {
        let ts = at(NY, date(2026, 12, 1).at(3, 0, 0, 0));
        assert_eq!(next_allowed(ts, &Window::DEFAULT, &[]), Some(ts));
    }

    #[test]
    fn dst_nights_open_at_local_eight() {
        let w = Window::DEFAULT;
        // US 2027: spring forward 2027-03-14, fall back 2027-11-07.
        // EU 2027: 2027-03-28 and 2027-10-31.
        let cases = [
            (NY, date(2027, 3, 13), date(2027, 3, 14)),
            (NY, date(2027, 11, 6), date(2027, 11, 7)),
            ("America/Los_Angeles", date(2027, 3, 13), date(2027, 3, 14)),
            ("America/Los_Angeles", date(2027, 11, 6), date(2027, 11, 7)),
            ("Europe/Berlin", date(2027, 3, 27), date(2027, 3, 28)),
            ("Europe/Berlin", date(2027, 10, 30), date(2027, 10, 31)),
            ("Europe/Lisbon", date(2027, 3, 27), date(2027, 3, 28)),
            ("Europe/Lisbon", date(2027, 10, 30), date(2027, 10, 31)),
        ];
        for (zone, eve, day) in cases {
            let from = at(zone, eve.at(22, 0, 0, 0));
            let got = next_allowed(from, &w, &[tz(zone)]).unwrap();
            assert_eq!(local(zone, got), day.at(8, 0, 0, 0), "{zone} {eve}");
            // The night really was an hour shorter/longer than 10 hours.
            let hours = got.duration_since(from).as_hours();
            let expected = if day.month() == 3 { 9 } else { 11 };
            assert_eq!(hours, expected, "{zone} {eve}");
        }
    }

    #[test]
    fn window_starting_in_the_gap_opens_at_the_transition() {
        // 2027-03-14 New York: 02:00 EST jumps to 03:00 EDT. A window starting
        // at 02:30 is open from the jump on, since the clock then reads 03:00.
        let w = Window::new(time(2, 30, 0, 0), time(21, 0, 0, 0)).unwrap();
        let got = next_allowed(at(NY, date(2027, 3, 14).at(1, 0, 0, 0)), &w, &[tz(NY)]).unwrap();
        assert_eq!(local(NY, got), date(2027, 3, 14).at(3, 0, 0, 0));
        assert_eq!(got.to_string(), "2027-03-14T07:00:00Z");
        // A window lying entirely inside the gap does not exist that day.
        let w = Window::new(time(2, 10, 0, 0), time(2, 50, 0, 0)).unwrap();
        let got = next_allowed(at(NY, date(2027, 3, 14).at(1, 0, 0, 0)), &w, &[tz(NY)]).unwrap();
        assert_eq!(local(NY, got), date(2027, 3, 15).at(2, 10, 0, 0));
    }

    #[test]
    fn fold_that_reenters_the_window_is_found() {
        // 2027-11-07 New York: 02:00 EDT falls back to 01:00 EST. A window
        // ending at 01:30 is left at 01:30 EDT and re-entered at the fold.
        let w = Window::new(time(22, 0, 0, 0), time(1, 30, 0, 0)).unwrap();
        let from: Timestamp = "2027-11-07T05:45:00Z".parse().unwrap(); // 01:45 EDT
        let got = next_allowed(from, &w, &[tz(NY)]).unwrap();
        assert_eq!(got.to_string(), "2027-11-07T06:00:00Z"); // 01:00 EST
        assert_eq!(brute_force(from, &w, &[tz(NY)], 48 * 60), Some(got));
    }

    #[test]
    fn window_crossing_midnight() {
        let night = Window::parse("22:00", "06:00").unwrap();
        let d = date(2026, 12, 1);
        assert_eq!(
            next1(at(NY, d.at(12, 0, 0, 0)), &night, NY),
            d.at(22, 0, 0, 0)
        );
        assert_eq!(
            next1(at(NY, d.at(6, 0, 0, 0)), &night, NY),
            d.at(22, 0, 0, 0)
        );
        let late = at(NY, d.at(23, 30, 0, 0));
        assert_eq!(next_allowed(late, &night, &[tz(NY)]), Some(late));
        let early = at(NY, d.at(5, 0, 0, 0));
        assert_eq!(next_allowed(early, &night, &[tz(NY)]), Some(early));
    }

    /// Earliest whole minute (after `from` rounded up) allowed in all zones,
    /// scanning `minutes` minutes; `from` itself is tried first.
    fn brute_force(
        from: Timestamp,
        w: &Window,
        zones: &[TimeZone],
        minutes: i64,
    ) -> Option<Timestamp> {
        let ok = |t: Timestamp| zones.iter().all(|z| w.contains(z.to_datetime(t).time()));
        if ok(from) {
            return Some(from);
        }
        let first = from.as_second().div_euclid(60) * 60 + 60;
        (0..minutes)
            .map(|m| Timestamp::from_second(first + m * 60).unwrap())
            .find(|&t| ok(t))
    }

    #[test]
    fn several_zones_match_a_minute_by_minute_scan() {
        let sets: [&[&str]; 7] = [
            &["America/New_York"],
            &["Europe/Lisbon"],
            &["America/New_York", "America/Chicago"],
            &[
                "America/Los_Angeles",
                "America/New_York",
                "Pacific/Honolulu",
            ],
            &["Europe/Lisbon", "Atlantic/Azores"],
            &["Asia/Kolkata", "Europe/London", "Australia/Eucla"],
            &["Europe/Berlin", "America/New_York"],
        ];
        let windows = [
            Window::DEFAULT,
            Window::parse("22:00", "06:00").unwrap(),
            Window::parse("09:15", "17:45").unwrap(),
        ];
        // Minute-aligned starts every 7h13m across the 2027 US and EU DST
        // changes, plus ordinary days, so answers are whole minutes too.
        let starts: Vec<Timestamp> = [
            "2026-12-01T00:00:00Z",
            "2027-03-12T00:00:00Z",
            "2027-10-29T00:00:00Z",
            "2027-11-05T00:00:00Z",
        ]
        .iter()
        .flat_map(|s| {
            let base: Timestamp = s.parse().unwrap();
            (0..12).map(move |i| base + SignedDuration::from_mins(i * 433))
        })
        .collect();
        let mut checked = 0;
        for set in sets {
            let zones: Vec<TimeZone> = set.iter().map(|n| tz(n)).collect();
            for w in &windows {
                for &from in &starts {
                    let got = next_allowed(from, w, &zones);
                    let want = brute_force(from, w, &zones, 48 * 60);
                    assert_eq!(got, want, "{set:?} {w:?} from {from}");
                    if let Some(got) = got {
                        for z in &zones {
                            assert!(w.contains(z.to_datetime(got).time()));
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100, "only {checked} cases had an answer");
    }

    #[test]
    fn new_york_and_chicago() {
        // 07:30 in New York is 06:30 in Chicago: wait for Chicago's 08:00.
        let zones = [tz(NY), tz("America/Chicago")];
        let from = at(NY, date(2026, 12, 1).at(7, 30, 0, 0));
        let got = next_allowed(from, &Window::DEFAULT, &zones).unwrap();
        assert_eq!(
            local("America/Chicago", got),
            date(2026, 12, 1).at(8, 0, 0, 0)
        );
        assert_eq!(local(NY, got), date(2026, 12, 1).at(9, 0, 0, 0));
        // 20:30 in New York: New York closes first, so the next common
        // opening is Chicago's 08:00 the next day.
        let from = at(NY, date(2026, 12, 1).at(21, 30, 0, 0));
        let got = next_allowed(from, &Window::DEFAULT, &zones).unwrap();
        assert_eq!(
            local("America/Chicago", got),
            date(2026, 12, 2).at(8, 0, 0, 0)
        );
    }

    #[test]
    fn zones_that_never_overlap_give_none() {
        // Tokyo (+09) and São Paulo (−03) are 12 hours apart and neither
        // observes DST: an 11-hour window never overlaps.
        let zones = [tz("Asia/Tokyo"), tz("America/Sao_Paulo")];
        let w = Window::parse("08:00", "19:00").unwrap();
        let from: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(next_allowed(from, &w, &zones), None);
        assert_eq!(brute_force(from, &w, &zones, 8 * 24 * 60), None);
        // A 13-hour window always overlaps for any two zones (2 × 13 > 24):
        // even UTC+14 and UTC−11 share an hour.
        let far = [tz("Pacific/Kiritimati"), tz("Pacific/Pago_Pago")];
        let got = next_allowed(from, &Window::DEFAULT, &far).unwrap();
        assert_eq!(
            brute_force(from, &Window::DEFAULT, &far, 48 * 60),
            Some(got)
        );
    }

    #[test]
    fn release_at_spreads_held_messages_only_and_stays_inside() {
        let w = Window::DEFAULT;
        let zones = [tz(NY)];
        let max = Duration::from_secs(20 * 60);
        let eight = at(NY, date(2026, 12, 2).at(8, 0, 0, 0));
        // Held overnight: 08:00 + spread.
        let night = at(NY, date(2026, 12, 1).at(23, 0, 0, 0));
        let got = release_at(night, &w, &zones, "msg-7", max).unwrap();
        let s = SignedDuration::try_from(spread("msg-7", max)).unwrap();
        assert!(s > SignedDuration::ZERO);
        assert_eq!(got, eight + s);
        // Not held: unchanged, no spread.
        let noon = at(NY, date(2026, 12, 1).at(12, 0, 0, 0));
        assert_eq!(release_at(noon, &w, &zones, "msg-7", max), Some(noon));
        // A spread longer than the window falls back to the opening, which
        // next_allowed accepts as is.
        let short = Window::parse("08:00", "08:01").unwrap();
        let got = release_at(night, &short, &zones, "msg-7", max).unwrap();
        assert_eq!(got, eight);
        assert_eq!(next_allowed(got, &short, &zones), Some(got));
        // Never-overlapping zones: nothing to release.
        let apart = [tz("Asia/Tokyo"), tz("America/Sao_Paulo")];
        let w11 = Window::parse("08:00", "19:00").unwrap();
        assert_eq!(release_at(night, &w11, &apart, "msg-7", max), None);
    }

    #[test]
    fn spread_is_deterministic_bounded_and_uniform() {
        let max = Duration::from_secs(20 * 60);
        assert_eq!(spread("msg-1", max), spread("msg-1", max));
        assert_ne!(spread("msg-1", max), spread("msg-2", max));
        assert_eq!(spread("msg-1", Duration::ZERO), Duration::ZERO);
        assert_eq!(spread("x", Duration::from_nanos(1)), Duration::ZERO);
        assert!(spread("msg-1", Duration::MAX) < Duration::MAX);
        let mut buckets = [0u32; 10];
        for i in 0..5000 {
            let s = spread(&format!("msg-{i}"), max);
            assert!(s < max, "{s:?}");
            buckets[(s.as_secs() / 120) as usize] += 1;
        }
        for (i, &n) in buckets.iter().enumerate() {
            assert!(
                (300..=700).contains(&n),
                "bucket {i} holds {n}: {buckets:?}"
            );
        }
    }
}
