//! Fuzz target: arbitrary bytes read as a stream of CoreMsg frames under
//! FrameLimit::CONTROL (core to agent on the control stream); `check` then `parse` must
//! never panic and must agree, and whatever parses re-encodes.
#![no_main]

use honeybee_proto::FrameLimit;
use honeybee_proto::control::CoreMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = honeybee_proto_fuzz::frames::<CoreMsg>(data, FrameLimit::CONTROL);
});
