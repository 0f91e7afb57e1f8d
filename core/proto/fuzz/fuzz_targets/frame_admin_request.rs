//! Fuzz target: arbitrary bytes read as a stream of AdminRequest frames under
//! FrameLimit::ADMIN_REQUEST (what an admin client sends on honeybee-admin/1); `check` then
//! `parse` must never panic and must agree, and whatever parses re-encodes.
#![no_main]

use honeybee_proto::FrameLimit;
use honeybee_proto::admin::AdminRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = honeybee_proto_fuzz::frames::<AdminRequest>(data, FrameLimit::ADMIN_REQUEST);
});
