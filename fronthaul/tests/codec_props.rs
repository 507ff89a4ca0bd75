//! Property tests: encode/decode round trips of BFP, U-plane and C-plane
//! frames, the packetizer and the eAxC split over generated inputs.

use fronthaul::bfp::{self, prb_bytes, SAMPLES_PER_PRB};
use fronthaul::cell::{Compression, Direction, EaxcSplit};
use fronthaul::ecpri::{Eaxc, EthHeader, RtcHeader};
use fronthaul::oran::{AppHeader, CPlaneHeader, CSection, Type3Fields, USectionHeader};
use fronthaul::packetize::{PlanConfig, SymbolPlan, UPlaneFields};
use fronthaul::{parse_frame, FrameBuilder, Message, ParseConfig};
use proptest::prelude::*;

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::None), Just(Compression::Bfp)]
}

fn eth() -> impl Strategy<Value = EthHeader> {
    (any::<[u8; 6]>(), any::<[u8; 6]>(), proptest::option::of(any::<u16>())).prop_map(|(dst, src, vlan_tci)| EthHeader { dst, src, vlan_tci })
}

fn rtc() -> impl Strategy<Value = RtcHeader> {
    (any::<u16>(), any::<u8>(), any::<bool>(), 0u8..128).prop_map(|(eaxc, seq_id, e_bit, subseq_id)| RtcHeader { eaxc, seq_id, e_bit, subseq_id })
}

fn app(mu: u8) -> impl Strategy<Value = AppHeader> {
    (any::<bool>(), 0u8..16, any::<u8>(), 0u8..10, 0u8..(1 << mu), 0u8..14).prop_map(|(dl, filter_index, frame_id, subframe_id, slot_id, symbol_id)| AppHeader {
        direction: if dl { Direction::Downlink } else { Direction::Uplink },
        payload_version: 1,
        filter_index,
        frame_id,
        subframe_id,
        slot_id,
        symbol_id,
    })
}

/// What BFP/plain encoding then decoding yields for `iq`.
fn reference_decode(iq: &[i16], width: u8, comp: Compression) -> Vec<i16> {
    let mut buf = vec![0u8; iq.len() / SAMPLES_PER_PRB * prb_bytes(width, comp)];
    bfp::encode_prbs(iq, width, comp, &mut buf).unwrap();
    let mut out = vec![0i16; iq.len()];
    bfp::decode_prbs(&buf, width, comp, &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// BFP: error in 0..=2^e−1 per sample (truncation), no saturation, and e is
    /// the smallest exponent for which nothing saturates.
    #[test]
    fn bfp_error_bound_and_minimal_exponent(iq in any::<[i16; 24]>(), width in 1u8..=16, scale in 0u32..16) {
        let iq = iq.map(|x| x >> scale); // exercise small and large magnitudes
        let mut buf = [0u8; 49];
        let n = bfp::compress_prb(&iq, width, &mut buf);
        prop_assert_eq!(n, prb_bytes(width, Compression::Bfp));
        let e = u32::from(buf[0] & 0x0f);
        prop_assert_eq!(buf[0] >> 4, 0, "reserved nibble");
        let mut out = [0i16; 24];
        prop_assert_eq!(bfp::decompress_prb(&buf, width, &mut out), Ok(n));
        let lo = -(1i32 << (width - 1));
        let hi = (1i32 << (width - 1)) - 1;
        for (&x, &y) in iq.iter().zip(&out) {
            let d = i32::from(x) - i32::from(y);
            prop_assert!((0..(1i32 << e)).contains(&d), "x={} y={} e={}", x, y, e);
            let m = i32::from(x) >> e;
            prop_assert!((lo..=hi).contains(&m), "mantissa {} saturates at width {}", m, width);
        }
        if e > 0 {
            let saturates = iq.iter().any(|&x| !(lo..=hi).contains(&(i32::from(x) >> (e - 1))));
            prop_assert!(saturates, "exponent {} is not minimal", e);
        }
    }

    /// Uncompressed 16-bit PRBs round-trip exactly, big-endian.
    #[test]
    fn plain16_round_trip(iq in proptest::collection::vec(any::<i16>(), 0..10).prop_map(|v| v.repeat(24))) {
        let mut buf = vec![0u8; iq.len() * 2];
        prop_assert_eq!(bfp::pack_prbs_16(&iq, &mut buf), Ok(buf.len()));
        if let Some(&x) = iq.first() {
            prop_assert_eq!(&buf[..2], &x.to_be_bytes());
        }
        let mut back = vec![0i16; iq.len()];
        prop_assert_eq!(bfp::unpack_prbs_16(&buf, &mut back), Ok(buf.len()));
        prop_assert_eq!(back, iq);
    }

    /// U-plane frames with 1..=3 sections, any width/compression/udCompHdr
    /// setting, optional VLAN and trailer: parse gives back every field and
    /// the PRBs decode to exactly what the codec's encode→decode gives.
    #[test]
    fn uplane_round_trip(
        (mu, app) in (0u8..=3).prop_flat_map(|mu| (Just(mu), app(mu))),
        carrier in 1u16..=300,
        eth in eth(),
        rtc in rtc(),
        ud_comp_hdr in any::<bool>(),
        width in 1u8..=16,
        comp in compression(),
        secs in proptest::collection::vec((0u16..4096, any::<bool>(), any::<bool>(), any::<u16>(), any::<u16>(), 1u8..=16, compression()), 1..=3),
        trailer in proptest::collection::vec(any::<u8>(), 0..12),
        seed in any::<u64>(),
    ) {
        let mut headers = Vec::new();
        let mut iqs = Vec::new();
        let mut x = seed;
        for &(id, rb, sym_inc, a, b, w, c) in &secs {
            let start = a % carrier;
            let max = (carrier - start).min(255);
            let num = 1 + b % max;
            let (iq_width, compression) = if ud_comp_hdr { (w, c) } else { (width, comp) };
            headers.push(USectionHeader { section_id: id, rb, sym_inc, start_prb: start, num_prb: num, ud_comp_hdr, iq_width, compression });
            let iq: Vec<i16> = (0..usize::from(num) * 24).map(|_| { x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (x >> 48) as i16 }).collect();
            iqs.push(iq);
        }
        let mut buf = vec![0u8; 64 + headers.iter().map(|h| h.wire_len() + h.payload_len()).sum::<usize>() + trailer.len()];
        let mut b = FrameBuilder::uplane(&mut buf, &eth, &rtc, &app, mu).unwrap();
        for (h, iq) in headers.iter().zip(&iqs) {
            b.push_usection(h, iq).unwrap();
        }
        let len = b.finish(&trailer).unwrap();
        let cfg = ParseConfig { mu, carrier_prbs: carrier, ud_comp_hdr, iq_width: width, compression: comp, eaxc_split: EaxcSplit::default() };
        let f = parse_frame(&buf[..len], &cfg).unwrap();
        prop_assert_eq!(f.eth, eth);
        prop_assert_eq!(f.trailer, &trailer[..]);
        let Message::UPlane(u) = f.message else { panic!("not u-plane") };
        prop_assert_eq!(u.rtc, rtc);
        prop_assert_eq!(u.header, app);
        prop_assert_eq!(u.num_sections, headers.len());
        for ((h, payload), (want, iq)) in u.sections().zip(headers.iter().zip(&iqs)) {
            prop_assert_eq!(&h, want);
            let mut out = vec![0i16; iq.len()];
            bfp::decode_prbs(payload, h.iq_width, h.compression, &mut out).unwrap();
            prop_assert_eq!(out, reference_decode(iq, h.iq_width, h.compression));
        }
    }

    /// C-plane section type 1 and 3 messages round-trip.
    #[test]
    fn cplane_round_trip(
        (mu, app) in (0u8..=3).prop_flat_map(|mu| (Just(mu), app(mu))),
        carrier in 1u16..=300,
        rtc in rtc(),
        type3 in proptest::option::of((any::<u16>(), any::<u8>(), any::<u16>())),
        ud in any::<u8>(),
        secs in proptest::collection::vec((0u16..4096, any::<bool>(), any::<bool>(), any::<u16>(), any::<u16>(), 0u16..4096, 0u8..=14, 0u16..0x8000, -(1i32 << 23)..(1i32 << 23)), 1..=4),
    ) {
        let ch = CPlaneHeader {
            num_sections: 0,
            section_type: if type3.is_some() { 3 } else { 1 },
            ud_comp_hdr: ud,
            type3: type3.map(|(time_offset, frame_structure, cp_length)| Type3Fields { time_offset, frame_structure, cp_length }),
        };
        let sections: Vec<CSection> = secs.iter().map(|&(id, rb, sym_inc, a, b, re_mask, num_symbol, beam_id, fo)| {
            let start = a % carrier;
            let num = 1 + b % (carrier - start).min(255);
            CSection { section_id: id, rb, sym_inc, start_prb: start, num_prb: num, re_mask, num_symbol, beam_id, frequency_offset: if type3.is_some() { fo } else { 0 } }
        }).collect();
        let mut buf = [0u8; 256];
        let mut b = FrameBuilder::cplane(&mut buf, &EthHeader::default(), &rtc, &app, mu, &ch).unwrap();
        for s in &sections {
            b.push_csection(s).unwrap();
        }
        let len = b.finish(&[]).unwrap();
        let cfg = ParseConfig { mu, carrier_prbs: carrier, ..ParseConfig::default() };
        let f = parse_frame(&buf[..len], &cfg).unwrap();
        let Message::CPlane(c) = f.message else { panic!("not c-plane") };
        prop_assert_eq!(c.rtc, rtc);
        prop_assert_eq!(c.header, app);
        prop_assert_eq!(c.cheader, CPlaneHeader { num_sections: sections.len() as u8, ..ch });
        prop_assert_eq!(c.sections().collect::<Vec<_>>(), sections);
    }

    /// The packetizer tiles the carrier, respects the MTU and numPrbu's 8 bits,
    /// and the packets reassemble to the symbol's decoded IQ.
    #[test]
    fn symbol_plan_tiles_and_reassembles(
        prbs in 1u16..=275,
        mtu in 576u16..=9000,
        width in 1u8..=16,
        comp in compression(),
        ud_comp_hdr in any::<bool>(),
        vlan in any::<bool>(),
        trailer_len in 0usize..=8,
        seed in any::<u64>(),
    ) {
        let cfg = PlanConfig { prbs, iq_width: width, compression: comp, ud_comp_hdr, mtu, vlan, trailer_len };
        let plan = SymbolPlan::new(cfg).unwrap();
        let eth_len = if vlan { 18 } else { 14 };
        let mut next = 0u16;
        for p in plan.packets() {
            prop_assert_eq!(p.start_prb, next);
            prop_assert!(p.num_prb >= 1);
            prop_assert!(p.num_prb <= 255 || (plan.len() == 1 && p.num_prb == prbs));
            prop_assert!(p.frame_len - eth_len <= usize::from(mtu));
            next += p.num_prb;
        }
        prop_assert_eq!(next, prbs);
        let mut x = seed;
        let iq: Vec<i16> = (0..usize::from(prbs) * 24).map(|_| { x = x.wrapping_mul(6364136223846793005).wrapping_add(1); (x >> 48) as i16 }).collect();
        let want = reference_decode(&iq, width, comp);
        let eth = EthHeader { vlan_tci: vlan.then_some(5), ..EthHeader::default() };
        let f = UPlaneFields { eth, rtc: RtcHeader::new(3, 9), app: AppHeader::new(Direction::Uplink, 1, 2, 0, 5), mu: 0, section_id: 7 };
        let trailer = vec![0xee; trailer_len];
        let mut buf = vec![0u8; plan.max_frame_len()];
        let pcfg = ParseConfig { mu: 0, carrier_prbs: prbs, ud_comp_hdr, iq_width: width, compression: comp, eaxc_split: EaxcSplit::default() };
        let mut got = vec![0i16; iq.len()];
        for (k, p) in plan.packets().iter().enumerate() {
            let n = plan.write_packet(k, &f, &iq, &trailer, &mut buf).unwrap();
            prop_assert_eq!(n, p.frame_len);
            let fr = parse_frame(&buf[..n], &pcfg).unwrap();
            prop_assert_eq!(fr.trailer, &trailer[..]);
            let Message::UPlane(u) = fr.message else { panic!("not u-plane") };
            let (h, payload) = u.first_section().unwrap();
            prop_assert_eq!(h.start_prb, p.start_prb);
            prop_assert_eq!(h.num_prb, p.num_prb);
            let s = usize::from(p.start_prb) * 24;
            bfp::decode_prbs(payload, width, comp, &mut got[s..s + usize::from(p.num_prb) * 24]).unwrap();
        }
        prop_assert_eq!(got, want);
    }

    /// eAxC ids round-trip through any valid split.
    #[test]
    fn eaxc_round_trip(
        (a, b, c) in (0u8..=8, 0u8..=8).prop_flat_map(|(a, b)| (Just(a), Just(b), (8u8.saturating_sub(a + b))..=(16 - a - b).min(8))),
        raw in any::<u16>(),
    ) {
        // Every part has at most 8 bits (they are u8 fields).
        let d = 16 - a - b - c;
        let split = EaxcSplit { du_port: a, band_sector: b, cc: c, ru_port: d };
        let e = Eaxc::from_u16(raw, split).unwrap();
        prop_assert_eq!(e.to_u16(split).unwrap(), raw);
    }
}
