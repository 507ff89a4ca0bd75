//! Real-time set-up of the worker's thread (the worker binary calls it on its
//! main thread): CPU affinity, SCHED_FIFO, mlockall and 1 ns timer slack, each
//! reported as granted or refused, and the SIGTERM/SIGINT stop flag the worker
//! loop checks between receive calls. The implementation is the shared
//! [`rtsched`] crate (also used by rrh-sim); this module keeps the
//! `bbu_sim::worker::rt::…` names.

pub use rtsched::{apply, current_policy, pin_and_fifo, stop_on_signals, Granted, RtError, SignalError};
