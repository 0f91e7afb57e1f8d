//! Fuzz target: a whole unidirectional stream as the core reads it: one StreamKind byte,
//! then a telemetry batch frame or a capture header frame (followed by raw content), or
//! the upgrade offer an agent reads from a core-opened stream (then the package bytes).
#![no_main]

use honeybee_proto::FrameLimit;
use honeybee_proto::capture::CaptureHeader;
use honeybee_proto::event::EventBatch;
use honeybee_proto::stream::{StreamKind, UnknownStreamKind};
use honeybee_proto::upgrade::{OFFER_LIMIT, UpgradeOffer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    match StreamKind::from_byte(first) {
        Ok(kind) => {
            assert_eq!(kind as u8, first, "kind does not map back to its byte");
            match kind {
                StreamKind::Telemetry => {
                    for batch in
                        honeybee_proto_fuzz::frames::<EventBatch>(rest, FrameLimit::TELEMETRY)
                    {
                        for event in &batch.events {
                            let _ = event.validate();
                        }
                    }
                }
                StreamKind::Capture => {
                    // Only the first frame is a header; the content after it is raw bytes,
                    // but reading it as frames too is harmless and fuzzes more.
                    let _ = honeybee_proto_fuzz::frames::<CaptureHeader>(
                        rest,
                        FrameLimit::CAPTURE_HEADER,
                    );
                }
                StreamKind::Upgrade => {
                    for offer in honeybee_proto_fuzz::frames::<UpgradeOffer>(rest, OFFER_LIMIT) {
                        let _ = offer.validate();
                        let _ = offer.signed_message();
                    }
                }
            }
        }
        Err(UnknownStreamKind(b)) => {
            assert_eq!(b, first, "refusal names a different byte");
            assert!(
                b != StreamKind::Telemetry as u8
                    && b != StreamKind::Capture as u8
                    && b != StreamKind::Upgrade as u8
            );
        }
    }
});
