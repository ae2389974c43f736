//! One-time set-up done during a Lambda's init instead of on the first message it serves.
//!
//! Several pieces build themselves on first use: each territory's phone-number patterns
//! (compiled on the first number of that territory), the language
//! detector's trigram table, the consent matcher's word sets, the time-zone prefix table. Without this, the first
//! invocation after a cold start pays for all of it (tens of milliseconds of CPU), while Twilio
//! waits. Each piece here runs once on representative input; every handler's `from_env` (through
//! `ColdStart`) runs the pieces its function uses, so the work lands in the init phase, which
//! Lambda runs before the first event arrives, and a function that never uses a piece carries
//! neither its set-up nor (unreferenced) its tables.

use std::sync::Once;

/// Messages in the three consent languages, so the detector and the matcher see each.
const TEXTS: &[&str] = &[
    "Hola, ya pagué la renta de este mes. ¿Pueden confirmar?",
    "Hi, I paid the rent this month, can you confirm?",
    "Olá, já paguei o aluguel deste mês. Podem confirmar?",
    "STOP",
];

/// Builds everything lazily built on the request path: [`numbers`], [`texts`] and [`zones`].
pub fn warm() {
    numbers();
    texts();
    zones();
}

/// The phone-number metadata, for the functions that read numbers people wrote (the send API,
/// the console, rules). Idempotent and cheap after the first call.
pub fn numbers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // A US number's patterns, the region of the platform's numbers and tenants. Another
        // territory's compile on its first number in the process (tens of microseconds:
        // `phone::pattern`), too little to make every function's init pay for all 254.
        crate::phone::warm();
        let _ = crate::phone::Address::parse("whatsapp:+14155552671");
    });
}

/// Language detection and consent keywords, for every function that reads texts. Idempotent.
pub fn texts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for text in TEXTS {
            let _ = crate::language::detect(text);
            let _ = crate::consent::classify(text);
            let _ = crate::consent::Keyword::classify(text);
        }
    });
}

/// The time-zone database and the number-prefix → zone table, for the functions that place a
/// send in the recipient's day. A function that never does (the inbound webhook) leaves this
/// out, and with it, unreferenced, the tables themselves from its binary. Idempotent.
pub fn zones() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        crate::schedule::preload();
        let _ = crate::schedule::zones_for_number("+14155552671");
    });
}
