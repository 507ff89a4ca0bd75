//! The radio-head simulator: capture mode (pcap of a cell's traffic) and live
//! mode (paced transmit, receive of BBU replies, latency recording).

pub mod capture;
pub mod live;
