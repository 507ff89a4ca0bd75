//! The BBU worker: receive, slot assembly, baseband pipeline, deadline
//! accounting, replies.

pub mod pipeline;
pub mod worker;
