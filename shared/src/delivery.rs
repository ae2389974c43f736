//! Twilio message statuses and the order they move in. Twilio does not deliver status
//! callbacks in order, so a status is only ever replaced by one that ranks higher.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Accepted,
    Scheduled,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Undelivered,
    Canceled,
    /// A status this version does not know: kept in the history, never ranked.
    #[serde(other)]
    Unknown,
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
            .unwrap_or(DeliveryStatus::Unknown)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Undelivered => "undelivered",
            Self::Canceled => "canceled",
            Self::Unknown => "unknown",
        }
    }

    /// accepted/scheduled < queued < sending < sent < delivered < read < terminal failures.
    fn rank(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Accepted | Self::Scheduled => 1,
            Self::Queued => 2,
            Self::Sending => 3,
            Self::Sent => 4,
            Self::Delivered => 5,
            Self::Read => 6,
            Self::Failed | Self::Undelivered | Self::Canceled => 7,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 7
    }

    /// Nothing more is expected from Twilio: delivered (or read), or a terminal failure.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Read) || self.is_terminal()
    }

    /// Whether a message at `self` should move to `next`.
    pub fn advances_to(self, next: DeliveryStatus) -> bool {
        !self.is_terminal() && next.rank() > self.rank()
    }
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::{self, *};

    fn settle(order: &[DeliveryStatus]) -> DeliveryStatus {
        order.iter().fold(
            Accepted,
            |at, &next| if at.advances_to(next) { next } else { at },
        )
    }

    #[test]
    fn every_order_of_queued_sent_delivered_ends_delivered() {
        let statuses = [Queued, Sent, Delivered];
        for a in 0..3 {
            for b in 0..3 {
                for c in 0..3 {
                    if a != b && b != c && a != c {
                        let order = [statuses[a], statuses[b], statuses[c]];
                        assert_eq!(settle(&order), Delivered, "{order:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn failures_are_terminal_and_win_over_progress() {
        assert_eq!(settle(&[Queued, Sent, Failed]), Failed);
        assert_eq!(settle(&[Failed, Sent, Delivered]), Failed);
        assert_eq!(settle(&[Sent, Undelivered, Delivered]), Undelivered);
        assert_eq!(settle(&[Delivered, Read, Sent]), Read);
        assert!(!Unknown.advances_to(Unknown));
    }

    #[test]
    fn parsing_is_case_insensitive_and_total() {
        assert_eq!(DeliveryStatus::parse("DELIVERED"), Delivered);
        assert_eq!(DeliveryStatus::parse("partially_delivered"), Unknown);
    }
}
