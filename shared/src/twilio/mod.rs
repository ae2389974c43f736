//! Twilio at the boundary: request validation, webhook payloads and identifiers.

pub mod client;
pub mod form;
pub mod inbound;
pub mod overrides;
pub mod received;
pub mod sid;
pub mod signature;

pub use form::{Form, FormError};
pub use inbound::{InboundError, InboundSms, Media};
pub use sid::{AccountSid, MessageSid, SidError};
