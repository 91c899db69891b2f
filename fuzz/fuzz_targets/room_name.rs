#![no_main]

use chat_domain::invariants::check_room_name;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| check_room_name(text));
