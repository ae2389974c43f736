//! `parley::fuzzing::pattern`: the property it checks is documented there.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| parley::fuzzing::pattern(data));
