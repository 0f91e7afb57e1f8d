//! Fuzz target: arbitrary bytes read as a stream of EventBatch frames under
//! FrameLimit::TELEMETRY (one telemetry stream); `check` then `parse` must never panic and
//! must agree, and whatever parses re-encodes.
#![no_main]

use honeybee_proto::FrameLimit;
use honeybee_proto::event::EventBatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let msgs = honeybee_proto_fuzz::frames::<EventBatch>(data, FrameLimit::TELEMETRY);
    // The core validates every event it decoded; that must not panic either.
    for batch in &msgs {
        for event in &batch.events {
            let _ = event.validate();
            let _ = event.kind.name();
        }
    }
});
