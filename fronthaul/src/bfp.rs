//! Block floating point compression of PRBs (any width 1..=16).
