//! The fuzz body, shared by the cargo-fuzz target (`parse_frame.rs`) and the
//! stable `cargo test` harness (`fronthaul/tests/fuzz_stable.rs`).
//!
//! The first input byte picks the parse configuration; the rest is the frame.
//! Parsing must return (never panic); a parsed U-plane's sections must tile
//! its payload and decode; a parsed C-plane's sections must match
//! numberOfSections.

use fronthaul::bfp::{decode_prbs, prb_bytes, SAMPLES_PER_PRB};
use fronthaul::cell::{Compression, EaxcSplit};
use fronthaul::{parse_ecpri, parse_frame, Frame, Message, ParseConfig};

/// Parse configuration selected by one byte.
pub fn config(sel: u8) -> ParseConfig {
    const PRBS: [u16; 8] = [273, 51, 106, 1, 255, 256, 24, 1023];
    ParseConfig {
        mu: sel & 3,
        carrier_prbs: PRBS[usize::from((sel >> 2) & 7)],
        ud_comp_hdr: sel & 0x20 != 0,
        iq_width: if sel & 0x40 != 0 { 9 } else { 16 },
        compression: if sel & 0x80 != 0 { Compression::Bfp } else { Compression::None },
        eaxc_split: EaxcSplit::default(),
    }
}

fn check(f: &Frame<'_>, len: usize) {
    match f.message {
        Message::UPlane(u) => {
            let mut n = 0;
            let mut iq = [0i16; SAMPLES_PER_PRB * 64];
            for (h, payload) in u.sections() {
                n += 1;
                assert_eq!(payload.len(), usize::from(h.num_prb) * prb_bytes(h.iq_width, h.compression));
                for chunk in payload.chunks(64 * prb_bytes(h.iq_width, h.compression)) {
                    let prbs = chunk.len() / prb_bytes(h.iq_width, h.compression);
                    let used = decode_prbs(chunk, h.iq_width, h.compression, &mut iq[..prbs * SAMPLES_PER_PRB]).expect("validated section decodes");
                    assert_eq!(used, chunk.len());
                }
            }
            assert_eq!(n, u.num_sections);
            assert!(n >= 1);
        }
        Message::CPlane(c) => {
            assert_eq!(c.sections().count(), usize::from(c.cheader.num_sections));
        }
        Message::DelayMeasurement(_) | Message::Vendor { .. } => {}
    }
    assert!(f.trailer.len() <= len);
}

/// One fuzz iteration.
pub fn run(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let cfg = config(sel);
    if let Ok(f) = parse_frame(frame, &cfg) {
        check(&f, frame.len());
    }
    if let Ok(f) = parse_ecpri(frame, &cfg) {
        check(&f, frame.len());
    }
}
