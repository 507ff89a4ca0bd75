//! Network plumbing: namespaces, veth pairs and taps, all `cranlab`-prefixed.
