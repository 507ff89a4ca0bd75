//! Capture mode: N slots of a cell's traffic written as a pcap.
