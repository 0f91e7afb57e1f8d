//! Fuzz target: arbitrary bytes through `honeybee_agent::fuzz_api::sftp_session`, which drives the
//! service's sans-IO code as its driver does and asserts its invariants (see that function).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    honeybee_agent::fuzz_api::sftp_session(data);
});
