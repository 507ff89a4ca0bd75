//! Every malformed input maps to its typed error (and nothing panics).

use fronthaul::cell::{Compression, Direction, EaxcSplit};
use fronthaul::ecpri::{DelayMeasurement, EthHeader, RtcHeader};
use fronthaul::oran::{AppHeader, CPlaneHeader, CSection, USectionHeader};
use fronthaul::{parse_ecpri, parse_frame, FhError, FrameBuilder, Message, ParseConfig};

const ETH: usize = 14;
/// Offsets inside a frame without VLAN tag.
const ECPRI: usize = ETH;
const APP: usize = ETH + 8;
const SEC: usize = ETH + 12;

fn cfg() -> ParseConfig {
    ParseConfig { mu: 1, carrier_prbs: 273, ud_comp_hdr: true, iq_width: 9, compression: Compression::Bfp, eaxc_split: EaxcSplit::default() }
}

fn section(start: u16, num: u16) -> USectionHeader {
    USectionHeader { section_id: 5, rb: false, sym_inc: false, start_prb: start, num_prb: num, ud_comp_hdr: true, iq_width: 9, compression: Compression::Bfp }
}

/// A valid U-plane frame: µ=1, section of 10 PRBs at PRB 100, 9-bit BFP.
fn uplane(trailer: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 400];
    let app = AppHeader::new(Direction::Uplink, 7, 3, 1, 13);
    let mut b = FrameBuilder::uplane(&mut buf, &EthHeader::default(), &RtcHeader::new(0x0012, 200), &app, 1).unwrap();
    b.push_usection(&section(100, 10), &[1000i16; 240]).unwrap();
    let n = b.finish(trailer).unwrap();
    buf.truncate(n);
    buf
}

fn cplane(type3: bool) -> Vec<u8> {
    let mut buf = vec![0u8; 200];
    let app = AppHeader::new(Direction::Uplink, 7, 3, 1, 0);
    let ch = CPlaneHeader { num_sections: 0, section_type: if type3 { 3 } else { 1 }, ud_comp_hdr: 0x91, type3: type3.then(Default::default) };
    let mut b = FrameBuilder::cplane(&mut buf, &EthHeader::default(), &RtcHeader::new(1, 1), &app, 1, &ch).unwrap();
    let s = CSection { section_id: 1, rb: false, sym_inc: false, start_prb: 0, num_prb: 273, re_mask: 0xfff, num_symbol: 14, beam_id: 3, frequency_offset: -5 * i32::from(type3) };
    b.push_csection(&s).unwrap();
    b.push_csection(&CSection { section_id: 2, ..s }).unwrap();
    let n = b.finish(&[]).unwrap();
    buf.truncate(n);
    buf
}

fn err(frame: &[u8]) -> FhError {
    parse_frame(frame, &cfg()).expect_err("frame should be rejected")
}

#[test]
fn valid_frames_parse() {
    let f = uplane(&[]);
    assert_eq!(f.len(), ETH + 4 + 4 + 4 + 6 + 10 * 28);
    let p = parse_frame(&f, &cfg()).unwrap();
    assert!(p.trailer.is_empty());
    let Message::UPlane(u) = p.message else { panic!() };
    assert_eq!((u.header.frame_id, u.header.subframe_id, u.header.slot_id, u.header.symbol_id), (7, 3, 1, 13));
    assert_eq!(u.rtc, RtcHeader::new(0x12, 200));
    let c = cplane(false);
    let Message::CPlane(c) = parse_frame(&c, &cfg()).unwrap().message else { panic!() };
    assert_eq!(c.sections().map(|s| s.num_prb).collect::<Vec<_>>(), vec![273, 273]);
    let c3 = cplane(true);
    let Message::CPlane(c3) = parse_frame(&c3, &cfg()).unwrap().message else { panic!() };
    assert_eq!(c3.sections().next().unwrap().frequency_offset, -5);
}

#[test]
fn trailer_and_vlan() {
    let ts = 0x0123_4567_89ab_cdefu64.to_be_bytes();
    let f = uplane(&ts);
    assert_eq!(parse_frame(&f, &cfg()).unwrap().trailer, &ts);
    // Ethernet padding also lands in the trailer.
    let c = [cplane(false), vec![0u8; 6]].concat();
    assert_eq!(parse_frame(&c, &cfg()).unwrap().trailer, &[0u8; 6]);
    // 802.1Q tag.
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00, 0x20, 0x05]);
    t.extend_from_slice(&f[12..]);
    let p = parse_frame(&t, &cfg()).unwrap();
    assert_eq!(p.eth.vlan_tci, Some(0x2005));
    assert_eq!(p.trailer, &ts);
    // Without the Ethernet header.
    assert!(matches!(parse_ecpri(&f[ETH..], &cfg()).unwrap().message, Message::UPlane(_)));
}

#[test]
fn every_truncation_is_an_error() {
    for frame in [uplane(&[]), cplane(false), cplane(true)] {
        for n in 0..frame.len() {
            let e = err(&frame[..n]);
            assert!(matches!(e, FhError::Truncated { .. } | FhError::PayloadSize { .. }), "len {n}: {e:?}");
        }
    }
}

#[test]
fn ethernet_and_ecpri_header_errors() {
    let f = uplane(&[]);
    let mut x = f.clone();
    x[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    assert_eq!(err(&x), FhError::NotEcpri(0x0800));
    let mut x = f.clone();
    x[ECPRI] = 0x20;
    assert_eq!(err(&x), FhError::BadRevision(2));
    let mut x = f.clone();
    x[ECPRI] = 0x11;
    assert_eq!(err(&x), FhError::Concatenated);
    for t in [1u8, 3, 4, 6, 7, 63] {
        let mut x = f.clone();
        x[ECPRI + 1] = t;
        assert_eq!(err(&x), FhError::UnknownMessageType(t));
    }
}

#[test]
fn payload_size_disagreeing_with_the_frame() {
    let f = uplane(&[]);
    let size = u16::from_be_bytes([f[ECPRI + 2], f[ECPRI + 3]]);
    let mut x = f.clone();
    x[ECPRI + 2..ECPRI + 4].copy_from_slice(&(size + 1).to_be_bytes());
    assert_eq!(err(&x), FhError::PayloadSize { declared: usize::from(size) + 1, available: usize::from(size) });
    // Too short to hold PC_ID + the O-RAN header.
    let mut x = f.clone();
    x[ECPRI + 2..ECPRI + 4].copy_from_slice(&5u16.to_be_bytes());
    assert!(matches!(err(&x), FhError::PayloadSize { declared: 5, .. }));
    // One byte short: the section runs past the packet.
    let mut x = f.clone();
    x[ECPRI + 2..ECPRI + 4].copy_from_slice(&(size - 1).to_be_bytes());
    assert_eq!(err(&x), FhError::SectionPastPacket { section_id: 5, need: 280, have: 279 });
    // Headers only: no section.
    let mut x = f.clone();
    x[ECPRI + 2..ECPRI + 4].copy_from_slice(&8u16.to_be_bytes());
    assert_eq!(err(&x), FhError::NoSection);
}

#[test]
fn fields_out_of_range_for_the_numerology() {
    let f = uplane(&[]);
    let with = |i: usize, v: u8| {
        let mut x = f.clone();
        x[i] = v;
        x
    };
    let field = |e: FhError| match e {
        FhError::FieldRange { field, .. } => field,
        other => panic!("expected FieldRange, got {other:?}"),
    };
    // symbolId 14 (slot bits kept: slotId 1 → top bits 01).
    assert_eq!(field(err(&with(APP + 3, 0x40 | 14))), "symbolId");
    // slotId 2 with µ = 1.
    assert_eq!(field(err(&with(APP + 3, 0x80 | 13))), "slotId");
    // subframeId 10.
    assert_eq!(field(err(&with(APP + 2, 0xa0))), "subframeId");
    // payloadVersion 2.
    assert_eq!(field(err(&with(APP, 0x20))), "payloadVersion");
    // slotId 1 is fine at µ = 1 but not at µ = 0.
    assert_eq!(field(parse_frame(&f, &ParseConfig { mu: 0, ..cfg() }).unwrap_err()), "slotId");
    // startPrbu beyond the carrier, and start + num beyond it.
    assert_eq!(field(parse_frame(&f, &ParseConfig { carrier_prbs: 100, ..cfg() }).unwrap_err()), "startPrbu");
    assert_eq!(field(parse_frame(&f, &ParseConfig { carrier_prbs: 109, ..cfg() }).unwrap_err()), "numPrbu");
}

#[test]
fn section_level_errors() {
    let f = uplane(&[]);
    // udCompMeth 2 (block scaling) is not implemented.
    let mut x = f.clone();
    x[SEC + 4] = 0x92;
    assert_eq!(err(&x), FhError::UnsupportedCompression(2));
    // numPrbu = 0 means "all PRBs from startPrbu": 173 PRBs do not fit.
    let mut x = f.clone();
    x[SEC + 3] = 0;
    assert!(matches!(err(&x), FhError::SectionPastPacket { section_id: 5, .. }));
    // Without udCompHdr the configured width is used; a bad one is an error.
    let bad = ParseConfig { ud_comp_hdr: false, iq_width: 0, ..cfg() };
    assert_eq!(parse_frame(&f, &bad).unwrap_err(), FhError::BadWidth(0));
}

#[test]
fn cplane_errors() {
    let c = cplane(false);
    let nsec = APP + 4;
    let mut x = c.clone();
    x[nsec] = 3;
    assert_eq!(err(&x), FhError::SectionCount { declared: 3, found: 2 });
    let mut x = c.clone();
    x[nsec + 1] = 5;
    assert_eq!(err(&x), FhError::UnsupportedSectionType(5));
    let s0 = APP + 8;
    let mut x = c.clone();
    x[s0 + 6] |= 0x80; // ef
    assert_eq!(err(&x), FhError::UnsupportedExtension(1));
    let mut x = c.clone();
    x[s0 + 5] = 0xff; // numSymbol 15
    assert!(matches!(err(&x), FhError::FieldRange { field: "numSymbol", .. }));
}

#[test]
fn delay_measurement_and_vendor_messages() {
    let m = DelayMeasurement { measurement_id: 9, action_type: 2, seconds: 0x0102_0304_0506, nanoseconds: 999_999_999, compensation: -42 };
    let mut buf = [0u8; 80];
    let n = FrameBuilder::delay_measurement(&mut buf, &EthHeader::default(), &m).unwrap().finish(&[]).unwrap();
    assert_eq!(parse_frame(&buf[..n], &cfg()).unwrap().message, Message::DelayMeasurement(m));
    assert!(matches!(parse_frame(&buf[..n - 1], &cfg()), Err(FhError::PayloadSize { .. })));

    let mut b = FrameBuilder::vendor(&mut buf, &EthHeader::default(), 0xc5).unwrap();
    b.push_bytes(b"slot done").unwrap();
    let n = b.finish(&[1, 2]).unwrap();
    let f = parse_frame(&buf[..n], &cfg()).unwrap();
    assert_eq!(f.message, Message::Vendor { message_type: 0xc5, payload: b"slot done" });
    assert_eq!(f.trailer, &[1, 2]);
    assert!(FrameBuilder::vendor(&mut buf, &EthHeader::default(), 63).is_err());
}

#[test]
fn builder_rejects_bad_fields_and_small_buffers() {
    let mut buf = [0u8; 40];
    let app = AppHeader::new(Direction::Uplink, 0, 0, 2, 0);
    assert!(matches!(FrameBuilder::uplane(&mut buf, &EthHeader::default(), &RtcHeader::new(0, 0), &app, 1), Err(FhError::FieldRange { field: "slotId", .. })));
    let app = AppHeader::new(Direction::Uplink, 0, 0, 0, 0);
    let mut b = FrameBuilder::uplane(&mut buf, &EthHeader::default(), &RtcHeader::new(0, 0), &app, 1).unwrap();
    assert!(matches!(b.push_usection(&section(0, 1), &[0; 24]), Err(FhError::BufferTooSmall { .. })));
    assert!(matches!(b.push_usection(&section(0, 1), &[0; 23]), Err(FhError::IqLength { need: 24, have: 23 })));
    assert!(matches!(b.push_usection(&USectionHeader { section_id: 4096, ..section(0, 0) }, &[]), Err(FhError::FieldRange { field: "sectionId", .. })));
    assert!(matches!(RtcHeader { subseq_id: 128, ..RtcHeader::new(0, 0) }.write(&mut [0u8; 4]), Err(FhError::FieldRange { field: "subSeqId", .. })));
}

#[test]
fn builder_refuses_empty_and_mismatched_sections() {
    let mut buf = [0u8; 200];
    let app = AppHeader::new(Direction::Uplink, 0, 0, 0, 0);
    let b = FrameBuilder::uplane(&mut buf, &EthHeader::default(), &RtcHeader::new(0, 0), &app, 1).unwrap();
    assert_eq!(b.finish(&[]), Err(FhError::NoSection));
    let ch = CPlaneHeader { num_sections: 0, section_type: 1, ud_comp_hdr: 0, type3: None };
    let mut b = FrameBuilder::cplane(&mut buf, &EthHeader::default(), &RtcHeader::new(0, 0), &app, 1, &ch).unwrap();
    assert!(matches!(b.push_usection(&section(0, 1), &[0; 24]), Err(FhError::Config { .. })));
    assert_eq!(b.finish(&[]), Err(FhError::NoSection));
}
