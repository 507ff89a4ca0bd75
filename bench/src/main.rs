//! `cranlab`: run experiments, write results and reports.

fn main() {}
