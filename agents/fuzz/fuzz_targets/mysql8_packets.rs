//! Fuzz target: arbitrary bytes through `honeybee_agent::fuzz_api::mysql8_packets`, which runs
//! the MySQL 8.0 persona's login (TLS offer, caching_sha2_password, RSA key exchange) on an
//! in-memory peer and asserts its invariants (see that function).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    honeybee_agent::fuzz_api::mysql8_packets(data);
});
