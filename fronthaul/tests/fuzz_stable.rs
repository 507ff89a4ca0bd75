//! The cargo-fuzz body (`fronthaul/fuzz/fuzz_targets/body.rs`) run on stable
//! as a test: over random byte strings, and over valid frames with random
//! byte edits and truncations (which reach much deeper into the parser).
//! The property: nothing panics and parsed frames keep their invariants.

#[path = "../fuzz/fuzz_targets/body.rs"]
mod body;

use fronthaul::cell::{Compression, Direction};
use fronthaul::ecpri::{EthHeader, RtcHeader};
use fronthaul::oran::{AppHeader, CPlaneHeader, CSection, USectionHeader};
use fronthaul::FrameBuilder;
use proptest::prelude::*;

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (w, c, udh) in [(9u8, Compression::Bfp, true), (16, Compression::None, false), (9, Compression::Bfp, false), (12, Compression::Bfp, true)] {
        let mut buf = vec![0u8; 2000];
        let app = AppHeader::new(Direction::Uplink, 1, 2, 0, 3);
        let mut b = FrameBuilder::uplane(&mut buf, &EthHeader::default(), &RtcHeader::new(3, 4), &app, 0).unwrap();
        let h = USectionHeader { section_id: 1, rb: false, sym_inc: false, start_prb: 0, num_prb: 3, ud_comp_hdr: udh, iq_width: w, compression: c };
        b.push_usection(&h, &[-300i16; 72]).unwrap();
        b.push_usection(&USectionHeader { start_prb: 3, num_prb: 2, ..h }, &[77i16; 48]).unwrap();
        let n = b.finish(&[9; 8]).unwrap();
        buf.truncate(n);
        out.push(buf);
    }
    for type3 in [false, true] {
        let mut buf = vec![0u8; 200];
        let ch = CPlaneHeader { num_sections: 0, section_type: 1, ud_comp_hdr: 0x91, type3: type3.then(Default::default) };
        let mut b = FrameBuilder::cplane(&mut buf, &EthHeader::default(), &RtcHeader::new(1, 1), &AppHeader::new(Direction::Uplink, 0, 0, 0, 0), 0, &ch).unwrap();
        b.push_csection(&CSection { section_id: 1, rb: false, sym_inc: false, start_prb: 0, num_prb: 24, re_mask: 0xfff, num_symbol: 14, beam_id: 0, frequency_offset: 0 }).unwrap();
        let n = b.finish(&[]).unwrap();
        buf.truncate(n);
        out.push(buf);
    }
    out
}

/// Configuration bytes whose parse configuration accepts the seeds
/// (µ = 0, 24 PRBs), for the four U-plane formats and both C-plane types.
const SEED_SEL: [u8; 6] = [0x20 | 0x40 | 0x80 | (6 << 2), 6 << 2, 0x40 | 0x80 | (6 << 2), 0x20 | 0x40 | 0x80 | (6 << 2), 6 << 2, 6 << 2];

#[test]
fn seeds_parse_under_their_selector() {
    for (s, &sel) in seeds().iter().zip(&SEED_SEL) {
        let cfg = body::config(sel);
        assert!(fronthaul::parse_frame(s, &cfg).is_ok(), "seed with selector {sel:#x} does not parse");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        body::run(&data);
    }

    #[test]
    fn mutated_frames_never_panic(
        which in 0usize..6,
        sel in any::<u8>(),
        use_seed_sel in any::<bool>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let seeds = seeds();
        let mut f = seeds[which].clone();
        for (i, v) in edits {
            let i = i % f.len();
            f[i] = v;
        }
        let keep = if cut % 3 == 0 { cut % (f.len() + 1) } else { f.len() };
        f.truncate(keep);
        let mut data = vec![if use_seed_sel { SEED_SEL[which] } else { sel }];
        data.extend_from_slice(&f);
        body::run(&data);
    }
}
