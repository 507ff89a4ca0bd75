//! The worker's slot-done reply (an eCPRI vendor-specific message).
