//! Parley's shared library: everything the Lambda functions and the local stack have in common.

pub mod access;
pub mod aws;
pub mod breaker;
pub mod config;
pub mod consent;
pub mod cursor;
pub mod delivery;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod events;
#[cfg(any(test, fuzzing))]
pub mod fuzzing;
pub mod handlers;
pub mod http;
pub mod language;
pub mod metrics;
pub mod monitor;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod pending;
pub mod phone;
pub mod pipeline;
pub mod queue;
pub mod rate;
pub mod rules;
pub mod schedule;
pub mod secrets;
pub mod segments;
pub mod send;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod twilio;
pub mod warm;
pub mod xray;
