//! The L1-high pipeline: BFP decompression, channel estimation, equalisation, demapping, bit check.
