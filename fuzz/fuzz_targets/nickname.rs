#![no_main]

use chat_domain::invariants::check_nickname;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| check_nickname(text));
