//! Real-time set-up of the sending thread: CPU affinity, SCHED_FIFO,
//! mlockall and 1 ns timer slack, each reported as granted or refused (with
//! the reason) instead of failing the run, and the SIGTERM/SIGINT stop flag
//! to pass as the `stop` of [`super::run`]. The implementation is the shared
//! [`rtsched`] crate (also used by bbu-sim); this module keeps the
//! `rrh_sim::live::rt::…` names.

pub use rtsched::{apply, current_policy, pin_and_fifo, stop_on_signals, Granted, RtError, SignalError};
