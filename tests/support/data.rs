//! Unique test data, and the record of sensitive values the log audit looks for.

use std::io::Write;

fn random_u64() -> u64 {
    (ulid::Ulid::new().random() & u128::from(u64::MAX)) as u64
}
/// A fresh, valid US mobile-style number no other test uses (area code 628, San Francisco),
/// recorded for the log audit.
pub fn unique_phone() -> String {
    let n = random_u64();
    let exchange = 200 + n % 800;
    let line = (n / 800) % 10_000;
    let phone = format!("+1628{exchange:03}{line:04}");
    record_sensitive("phone", &phone);
    phone
}

/// A fresh Twilio message SID.
pub fn unique_sid() -> String {
    format!("SM{:032x}", ulid::Ulid::new().0)
}

/// `+14155550123` as a person might type it: `415 555-0123`.
pub fn spaced(phone: &str) -> String {
    let national = &phone[2..];
    format!("{} {}-{}", &national[..3], &national[3..6], &national[6..])
}

/// A body no other test uses, recorded for the log audit.
pub fn unique_body(text: &str) -> String {
    // Digits only: language detection ignores them, while a ULID's random letters could tip
    // a short sentence into another language or below the confidence threshold.
    let body = format!("{text} [{}]", random_u64());
    record_sensitive("body", &body);
    body
}

/// Records a value the logs must never contain (checked after the run by `audit-logs`).
pub fn record_sensitive(kind: &str, value: &str) {
    let Some(path) = std::env::var_os("PARLEY_E2E_MANIFEST") else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(format!("{kind}\t{}\n", value.replace('\n', " ")).as_bytes());
    }
}
