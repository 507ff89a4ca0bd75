//! `rrh-sim`: the radio-head simulator.

fn main() {}
