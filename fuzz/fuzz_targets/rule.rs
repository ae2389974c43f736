//! `parley::fuzzing::rule`: the property it checks is documented there.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::rule(data));
