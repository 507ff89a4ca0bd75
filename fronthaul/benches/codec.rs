//! Codec benches (filled in next).
fn main() {}
