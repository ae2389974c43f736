//! Drives the sandbox over HTTP, in-process, each test on its own port.

mod api;
mod callbacks;
mod control;
mod faults;
mod inbound;
mod support;
