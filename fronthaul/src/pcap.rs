//! Writing frames as a pcap with their due timestamps.
