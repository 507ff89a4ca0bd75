//! Cgroups v1 and v2 through cgroupfs, with real-time budgets.
