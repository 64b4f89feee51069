//! Feeds arbitrary bytes to the frame decoder: it must never panic, and whatever it accepts
//! (header checks, postcard decoding without trailing bytes, structural validation) must
//! re-encode to a frame that decodes to the same batch.

#![no_main]

use libfuzzer_sys::fuzz_target;
use multiraft_transport_quic::frame::{FrameLimits, decode_frame, encode};

fuzz_target!(|data: &[u8]| {
    let limits = FrameLimits::default();
    if let Ok((batch, used)) = decode_frame(data, &limits) {
        assert!(used <= data.len());
        let mut again = Vec::new();
        encode(&batch, &limits, &mut again).expect("a decoded batch re-encodes");
        let (decoded, _) = decode_frame(&again, &limits).expect("a re-encoded batch decodes");
        assert_eq!(decoded, batch);
    }
});
