//! Shared pieces of the send pipeline's benchmarks: the emulator and SDK set-up (`stack`), an
//! SDK interceptor timing requests per operation (`timing`), CPU from /proc (`cpu`), summaries
//! (`stats`), the send runs (`scenario`, `calibrate`) and the pending-message engine's runs
//! (`pending`). The binaries are `parley-send-bench` (src/main.rs, `make bench-send`) and
//! `parley-pending-bench` (src/bin/parley-pending-bench.rs, `make bench-pending`).

pub mod calibrate;
pub mod cpu;
pub mod pending;
pub mod report;
pub mod scenario;
pub mod stack;
pub mod stats;
pub mod timing;
