//! Fuzz target: arbitrary bytes read as a stream of CaptureHeader frames under
//! FrameLimit::CAPTURE_HEADER (the header of a capture upload stream); `check` then `parse`
//! must never panic and must agree, and whatever parses re-encodes.
#![no_main]

use honeybee_proto::FrameLimit;
use honeybee_proto::capture::CaptureHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = honeybee_proto_fuzz::frames::<CaptureHeader>(data, FrameLimit::CAPTURE_HEADER);
});
