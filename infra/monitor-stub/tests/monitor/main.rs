//! Drives the Monitor stub over HTTP, in-process, each test on its own port.

mod control;
mod faults;
mod lookup;
mod profile;
mod support;
