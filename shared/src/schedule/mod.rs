//! Scheduling: when a message may be sent, in whose local time.
//!
//! # One rule, applied three times
//!
//! [`next_allowed`] is a pure function of (instant, window, zones). The API
//! calls it at accept time to tell the caller when the message will go out;
//! the release job calls it to decide what to enqueue; and the worker calls it
//! again at claim time, where its answer is authoritative. Accept-time and
//! release-time answers are only forecasts: the window config, the zone set or
//! the tz database may change while a message waits, and re-evaluating the
//! same pure function at the last moment means a stale forecast can delay a
//! message but never send one inside quiet hours. Being pure (no clock, no
//! I/O) is also what lets all three agree when nothing changed, and lets the
//! tests check it exhaustively against a brute-force scan.
//!
//! # Whose local time
//!
//! [`choose`] picks the zones by precedence: the request's `time_zone`, then
//! the tenant's configured zone, then every zone libphonenumber associates
//! with the number's prefix ([`zones_for_number`]), then a default. Explicit
//! choices win over inference; a number's prefix is only a guess, and when the
//! guess is ambiguous (`+7`, `+55`, an unassigned NANP area code) quiet hours
//! must hold in *all* its zones, because a message that wakes somebody is
//! worse than one that waits. The cost is a narrower window: a NANP number that
//! only matches the bare `+1` entry (42 zones, Guam to Newfoundland) is
//! sendable for 1.5–2.5 hours a day, early evening US Eastern time. A
//! `send_at` given as a local date-time is read in the first zone of the set
//! ([`Zones::primary`]); callers who need another pass a zone explicitly.
//!
//! # Spread
//!
//! Everything held overnight becomes sendable at the same 08:00. [`spread`]
//! adds a per-message offset derived from the message id (SHA-256, so stable
//! across retries and workers and uniform across ids) so the backlog drains
//! over minutes instead of hitting the carrier in one second. [`release_at`]
//! applies it only to messages that were actually held, and drops it when it
//! would push the release out of the window (the overlap of many zones can be
//! shorter than the spread); otherwise the claim-time check would defer that
//! message to the next day, where the same spread would fail again.

mod local_time;
mod quiet_hours;
mod zones;

pub use local_time::{
    choose, parse_zone, resolve, zone_name, SendAt, SendAtError, ZoneError, ZoneSource, Zones,
    MAX_YEARS_AHEAD,
};
pub use quiet_hours::{next_allowed, release_at, spread, HhMm, Window, WindowError};
pub use zones::{preload, zones_for_number};
