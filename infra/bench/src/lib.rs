//! Parley's benchmarks live in `benches/` (`[[bench]]` targets with `harness = false`); this
//! library is empty so that normal builds and test runs never compile them. Run them with
//! `make bench`; what each measures and the latest figures are in `docs/benchmarks.md`.
