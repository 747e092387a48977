#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jiancha_fuzz_checks::cursor(data));
