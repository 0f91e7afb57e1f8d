//! Fuzz target: arbitrary bytes read as a stream of AdminResponse frames under
//! FrameLimit::ADMIN_RESPONSE (what the core answers on honeybee-admin/1); `check` then
//! `parse` must never panic and must agree, and whatever parses re-encodes.
#![no_main]

use honeybee_proto::FrameLimit;
use honeybee_proto::admin::AdminResponse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = honeybee_proto_fuzz::frames::<AdminResponse>(data, FrameLimit::ADMIN_RESPONSE);
});
