//! In-memory lock-free rings between threads.
