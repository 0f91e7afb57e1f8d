//! Fuzz target: arbitrary bytes read as a stream of EnrollRequest frames under
//! FrameLimit::ENROLL (what an enrolling machine sends on honeybee-enroll/1); `check` then
//! `parse` must never panic and must agree, and whatever parses re-encodes.
#![no_main]

use honeybee_proto::FrameLimit;
use honeybee_proto::enroll::EnrollRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = honeybee_proto_fuzz::frames::<EnrollRequest>(data, FrameLimit::ENROLL);
});
