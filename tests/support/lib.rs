//! What the end-to-end tests share: the local stack's settings, unique test data, signed
//! Twilio requests, direct store access, and the record of sensitive values for the log audit.
//!
//! The suite runs against one stack started by `infra/scripts/test.sh` (`make test`), or
//! against a running `make run` stack when invoked by hand with `cargo nextest run`.
//!
//! By concern: `stack.rs` (settings, clients, resources of a test's own), `requests.rs`
//! (signed webhooks, the API, replies), `data.rs` (unique test data, the sensitive-value
//! record), `stubs.rs` (the Twilio sandbox and the Monitor stub), `events.rs` (domain events),
//! `fixtures.rs` (store seeding), `wait.rs` (polling) and `webdriver` (headless Chromium, the
//! console's browser tests). The modules are private and their
//! items re-exported here, so tests `use parley_e2e::*` and no module name shadows a crate.

mod data;
mod events;
mod fixtures;
mod requests;
mod stack;
mod stubs;
mod wait;

pub use parley;
pub use parley_local;

pub mod webdriver;

pub use data::*;
pub use fixtures::*;
pub use requests::*;
pub use stack::*;
pub use wait::*;

pub const TWILIO_NUMBER: &str = "+15005550006";
