//! The worker loop: receive, slot assembly, Ta4 accounting, wake-up lateness, replies, summary.
