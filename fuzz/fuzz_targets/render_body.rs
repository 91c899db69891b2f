#![no_main]

use chat_domain::invariants::{check_message_body, check_render_body};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    check_message_body(text);
    check_render_body(text);
});
