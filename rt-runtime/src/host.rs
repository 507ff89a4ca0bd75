//! Host facts and readiness checks.
