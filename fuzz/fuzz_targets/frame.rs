#![no_main]

use chat_domain::invariants::check_client_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| check_client_frame(text));
