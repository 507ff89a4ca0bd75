//! Launching BBU workers: the three deployments (bare, container, kvm),
//! namespaces, cgroups v1 and v2, cpusets, scheduling, capabilities, rootfs,
//! veth and XDP plumbing, host readiness checks and OCI bundles.

pub mod bare;
pub mod cgroup;
pub mod container;
pub mod deploy;
pub mod elf;
pub mod host;
pub mod isolate;
pub mod kvm;
pub mod net;
