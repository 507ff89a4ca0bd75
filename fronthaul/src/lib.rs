//! eCPRI and O-RAN 7.2x fronthaul for cranlab: the wire codec (U-plane,
//! C-plane, block floating point), NR numerology and the symbol clock, the
//! seeded traffic model both ends regenerate, the slot-done reply, and pcap
//! writing.
//!
//! This crate contains no `unsafe` and uses no other crate of the workspace.
#![forbid(unsafe_code)]

pub mod bfp;
pub mod cell;
pub mod ecpri;
pub mod error;
pub mod frame;
pub mod numerology;
pub mod oran;
pub mod packetize;
pub mod pcap;
pub mod reply;
pub mod timing;
pub mod traffic;

pub use error::FhError;
pub use frame::{parse_ecpri, parse_frame, Frame, FrameBuilder, Message, ParseConfig};
