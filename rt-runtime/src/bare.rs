//! The bare deployment: a plain process, pinned, SCHED_FIFO, mlockall.
