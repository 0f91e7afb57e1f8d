//! Fuzz target: arbitrary bytes through `honeybee_agent::fuzz_api::device_messages`, which drives the
//! aggregator's syslog framing and parsing and its SNMP trap reader as the service does and
//! asserts their invariants (see that function).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    honeybee_agent::fuzz_api::device_messages(data);
});
