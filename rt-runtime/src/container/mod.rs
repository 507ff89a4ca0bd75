//! The container deployment and the OCI runtime behind `rt-runtime run`.
