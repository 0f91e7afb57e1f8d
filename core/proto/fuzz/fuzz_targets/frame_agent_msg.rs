//! Fuzz target: arbitrary bytes read as a stream of AgentMsg frames under
//! FrameLimit::CONTROL (agent to core on the control stream); `check` then `parse` must
//! never panic and must agree, and whatever parses re-encodes.
#![no_main]

use honeybee_proto::FrameLimit;
use honeybee_proto::control::AgentMsg;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = honeybee_proto_fuzz::frames::<AgentMsg>(data, FrameLimit::CONTROL);
});
