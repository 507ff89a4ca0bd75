//! `bbu-sim`: the BBU worker.

fn main() {}
