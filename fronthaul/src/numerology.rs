//! NR numerology µ = 0..=3, the symbol clock and PRB tables.
