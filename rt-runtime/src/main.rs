//! `rt-runtime`: run OCI bundles with real-time settings applied or refused.

fn main() {}
