//! Host facts for results.json, from `rt_runtime::host` (the one place that
//! reads the host): the fields the results schema names are copied, and the
//! whole of rt-runtime's record is kept under `host.detail`.

use crate::results::HostFacts;

/// Gathers the facts of this host.
pub fn gather() -> HostFacts {
    let rt = rt_runtime::host::HostFacts::gather(&rt_runtime::host::Roots::default());
    convert(&rt)
}

/// Copies rt-runtime's facts into the results schema.
pub fn convert(rt: &rt_runtime::host::HostFacts) -> HostFacts {
    HostFacts {
        kernel_release: rt.kernel_release.clone(),
        preemption: rt.preemption.clone(),
        cmdline: rt.cmdline.clone(),
        cpu_model: rt.cpu_model.clone(),
        cpus_online: rt.cpus_online.len(),
        isolated_cpus: rt.isolated_cpus.clone(),
        nohz_full_cpus: rt.nohz_full_cpus.clone(),
        sched_rt_runtime_us: rt.sched_rt_runtime_us,
        sched_rt_period_us: rt.sched_rt_period_us,
        cgroup_version: rt.cgroup_version.clone(),
        isolation: if rt.isolated_cpus.is_empty() { "none".into() } else { "isolcpus".into() },
        smt_active: rt.smt_active,
        clocksource: rt.clocksource.clone(),
        notes: rt.notes.clone(),
        detail: serde_json::to_value(rt).unwrap_or_default(),
        ..HostFacts::default()
    }
}

/// Governor of `cpu`, if cpufreq exists.
pub fn governor(cpu: usize) -> Option<String> {
    std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"))
        .ok()
        .map(|s| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_copy_over() {
        let rt = rt_runtime::host::HostFacts {
            kernel_release: "6.18.0".into(),
            cpus_online: vec![0, 1, 2, 3],
            isolated_cpus: vec![3],
            sched_rt_runtime_us: Some(950_000),
            ..Default::default()
        };
        let f = convert(&rt);
        assert_eq!(f.kernel_release, "6.18.0");
        assert_eq!(f.cpus_online, 4);
        assert_eq!(f.isolation, "isolcpus");
        assert_eq!(f.sched_rt_runtime_us, Some(950_000));
        assert_eq!(f.detail["kernel_release"], "6.18.0");
    }
}
