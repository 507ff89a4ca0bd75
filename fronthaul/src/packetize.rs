//! Splitting a symbol's PRBs into MTU-sized U-plane packets, written in place.
