//! Timestamps as stored: RFC 3339 in UTC with exactly three fractional digits, so they sort
//! as text in time order.

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
}
