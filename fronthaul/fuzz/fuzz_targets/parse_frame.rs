//! cargo-fuzz target: the frame parser, section iterators and PRB decoders
//! must never panic and must keep their invariants on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "body.rs"]
mod body;

fuzz_target!(|data: &[u8]| body::run(data));
