//! Host facts and readiness: fake roots for the logic, this host for truth.

use std::fs;
use std::path::Path;

use rt_runtime::host::{self, CheckRequest, HostFacts, Roots, Status};

mod common;
use common::{put, Tmp};

/// A tuned 4-cpu RT host: isolated 2-3, PREEMPT_RT, performance, hardware KVM, v2.
fn tuned_host(r: &Path) {
    put(&r.join("proc/sys/kernel/osrelease"), "6.1.0-rt-amd64\n");
    put(&r.join("proc/sys/kernel/version"), "#1 SMP PREEMPT_RT Debian\n");
    put(&r.join("proc/cmdline"), "root=/dev/sda1 isolcpus=managed_irq,domain,2-3 nohz_full=2-3 rcu_nocbs=2-3 irqaffinity=0-1\n");
    put(&r.join("proc/cpuinfo"), "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu vmx sse\n");
    put(&r.join("proc/sys/kernel/sched_rt_runtime_us"), "-1\n");
    put(&r.join("proc/sys/kernel/sched_rt_period_us"), "1000000\n");
    put(&r.join("proc/sys/kernel/timer_migration"), "0\n");
    put(&r.join("proc/sys/kernel/io_uring_disabled"), "0\n");
    put(&r.join("proc/irq/24/smp_affinity_list"), "0-1\n");
    put(&r.join("proc/irq/25/smp_affinity_list"), "0\n");
    let c = r.join("sys/devices/system/cpu");
    put(&c.join("online"), "0-3\n");
    put(&c.join("isolated"), "2-3\n");
    put(&c.join("nohz_full"), "2-3\n");
    put(&c.join("smt/active"), "0\n");
    for i in 0..4 {
        put(&c.join(format!("cpu{i}/cpufreq/scaling_governor")), "performance\n");
        put(&c.join(format!("cpu{i}/topology/thread_siblings_list")), &format!("{i}\n"));
        put(&c.join(format!("cpu{i}/cpuidle/state0/name")), "POLL\n");
        put(&c.join(format!("cpu{i}/cpuidle/state0/latency")), "0\n");
        put(&c.join(format!("cpu{i}/cpuidle/state1/name")), "C6\n");
        put(&c.join(format!("cpu{i}/cpuidle/state1/latency")), "133\n");
        put(&c.join(format!("cpu{i}/cpuidle/state1/disable")), "1\n");
    }
    put(&r.join("sys/kernel/mm/transparent_hugepage/enabled"), "always [madvise] never\n");
    put(&r.join("sys/devices/system/clocksource/clocksource0/current_clocksource"), "tsc\n");
    put(&r.join("sys/devices/system/clocksource/clocksource0/available_clocksource"), "tsc hpet acpi_pm\n");
    put(&r.join("sys/module/kvm_intel/parameters/nested"), "Y\n");
    put(&r.join("dev/kvm"), "");
    put(&r.join("sys/fs/cgroup/cgroup.controllers"), "cpuset cpu memory pids\n");
}

fn status_of(items: &[host::CheckItem], name: &str) -> Status {
    items.iter().find(|i| i.name == name).unwrap_or_else(|| panic!("no item {name}: {items:?}")).status
}

#[test]
fn tuned_fake_host_passes_everything_but_the_unprobed_syscalls() {
    let t = Tmp::new("hostfake", "tuned");
    tuned_host(&t.0);
    let mut f = HostFacts::gather(&Roots::under(&t.0));
    assert_eq!(f.kernel_release, "6.1.0-rt-amd64");
    assert!(f.preempt_rt);
    assert_eq!(f.isolated_cpus, vec![2, 3]);
    assert_eq!(f.rcu_nocbs_cpus, vec![2, 3]);
    assert!(f.kvm.hardware, "{:?}", f.kvm);
    assert_eq!(f.cgroup_version, "v2");
    assert_eq!(f.thp.as_deref(), Some("madvise"));
    assert_eq!(f.cpus.len(), 4);
    assert!(f.cpus[2].idle_states[1].disabled);
    // The syscall probes are not run against fake roots; pretend they passed.
    f.af_xdp.available = true;
    f.io_uring.available = true;
    let items = host::check_facts(&f, &[2, 3]);
    let bad: Vec<_> = items.iter().filter(|i| i.status != Status::Pass).collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(host::exit_code(&items, true), 0);
    // Asking for cpus outside the isolated set is a warning with the exact fix.
    let items = host::check_facts(&f, &[1]);
    let iso = items.iter().find(|i| i.name == "isolcpus").unwrap();
    assert_eq!(iso.status, Status::Warn);
    assert!(iso.fix.contains("--cpus 2-3"), "{}", iso.fix);
    assert_eq!(status_of(&items, "irq affinity"), Status::Warn);
}

#[test]
fn untuned_fake_host_gets_the_right_fixes() {
    let t = Tmp::new("hostfake", "untuned");
    tuned_host(&t.0);
    let r = &t.0;
    put(&r.join("proc/sys/kernel/version"), "#1 SMP PREEMPT_DYNAMIC\n");
    put(&r.join("proc/cmdline"), "root=/dev/sda1 quiet\n");
    put(&r.join("boot/config-6.1.0-rt-amd64"), "CONFIG_PREEMPT_DYNAMIC=y\nCONFIG_PREEMPT_VOLUNTARY=y\n");
    put(&r.join("sys/devices/system/cpu/isolated"), "\n");
    put(&r.join("sys/devices/system/cpu/nohz_full"), "(null)\n");
    put(&r.join("proc/sys/kernel/sched_rt_runtime_us"), "950000\n");
    put(&r.join("proc/sys/kernel/timer_migration"), "1\n");
    put(&r.join("sys/kernel/mm/transparent_hugepage/enabled"), "[always] madvise never\n");
    put(&r.join("sys/devices/system/clocksource/clocksource0/current_clocksource"), "hpet\n");
    put(&r.join("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"), "powersave\n");
    put(&r.join("sys/devices/system/cpu/cpu1/cpuidle/state1/disable"), "0\n");
    put(&r.join("sys/devices/system/cpu/cpu1/topology/thread_siblings_list"), "1,3\n");
    put(&r.join("proc/cpuinfo"), "model name\t: AMD EPYC\nflags\t\t: fpu hypervisor\n");
    fs::remove_dir_all(r.join("sys/module/kvm_intel")).unwrap();
    put(&r.join("sys/module/kvm_pvm/parameters/x"), "");
    put(&r.join("proc/sys/kernel/io_uring_disabled"), "2\n");
    fs::remove_file(r.join("sys/fs/cgroup/cgroup.controllers")).unwrap();
    put(&r.join("sys/fs/cgroup/cpuset/cpuset.cpus"), "0-3");
    put(&r.join("sys/fs/cgroup/unified/cgroup.controllers"), "");
    let f = HostFacts::gather(&Roots::under(r));
    assert_eq!(f.preemption, "PREEMPT_DYNAMIC (voluntary)");
    assert!(!f.kvm.hardware && f.kvm.hypervisor_guest && f.kvm.modules == vec!["kvm_pvm".to_string()]);
    assert_eq!(f.cgroup_version, "hybrid");
    let items = host::check_facts(&f, &[1]);
    let get = |n: &str| items.iter().find(|i| i.name == n).unwrap().clone();
    assert_eq!(get("preemption").status, Status::Fail);
    assert!(get("preemption").fix.contains("linux-image-rt-amd64"));
    assert!(get("isolcpus").fix.contains("isolcpus=managed_irq,domain,1 nohz_full=1 rcu_nocbs=1 irqaffinity=0,2-3"), "{}", get("isolcpus").fix);
    assert_eq!(get("rt throttling").status, Status::Warn);
    assert!(get("rt throttling").detail.contains("50000 µs"));
    assert!(get("governor").fix.contains("cpupower -c 1 frequency-set -g performance"));
    assert!(get("idle states").detail.contains("C6 133"), "{}", get("idle states").detail);
    assert!(get("smt").detail.contains("cpu3"));
    assert!(get("thp").fix.contains("madvise"));
    assert!(get("timer migration").fix.contains("kernel.timer_migration=0"));
    assert_eq!(get("clocksource").status, Status::Warn);
    assert_eq!(get("kvm").status, Status::Fail);
    assert!(get("kvm").detail.contains("kvm_pvm") && get("kvm").detail.contains("guest"), "{}", get("kvm").detail);
    assert!(get("io_uring").fix.contains("io_uring_disabled=0"));
    assert_eq!(get("cgroup").status, Status::Warn);
    assert_eq!(host::exit_code(&items, false), 1);
    assert_eq!(host::exit_code(&items, true), 1);
}

#[test]
fn rt_group_sched_on_cgroup_v2_is_a_failure() {
    let t = Tmp::new("hostfake", "v2rt");
    tuned_host(&t.0);
    let r = &t.0;
    put(&r.join("boot/config-6.1.0-rt-amd64"), "CONFIG_RT_GROUP_SCHED=y\n");
    let f = HostFacts::gather(&Roots::under(r));
    assert_eq!(f.config_rt_group_sched, Some(true));
    assert!(!f.rt_group_sched, "v2 has no cpu.rt_runtime_us");
    let items = host::check_facts(&f, &[2]);
    let it = items.iter().find(|i| i.name == "rt group sched").unwrap();
    assert_eq!(it.status, Status::Fail, "{it:?}");
    assert!(it.fix.contains("rt_group_sched=0"));
    // Switched off at boot: fine.
    put(&r.join("proc/cmdline"), "isolcpus=2-3 rt_group_sched=0\n");
    let f = HostFacts::gather(&Roots::under(r));
    assert_eq!(f.config_rt_group_sched, Some(false));
    assert_eq!(host::check_facts(&f, &[2]).iter().find(|i| i.name == "rt group sched").unwrap().status, Status::Pass);
}

#[test]
fn this_host_is_reported_truthfully() {
    let items = host::check(&CheckRequest { worker_cpus: vec![], roots: Roots::default() });
    let f = HostFacts::gather(&Roots::default());
    eprintln!("{}", host::render(&items));
    // What the kernel says must be what the check says, whatever the host.
    assert_eq!(status_of(&items, "preemption") == Status::Pass, f.preempt_rt);
    assert_eq!(status_of(&items, "kvm") == Status::Pass, f.kvm.hardware && !f.kvm.hypervisor_guest);
    let iso = fs::read_to_string("/sys/devices/system/cpu/isolated").unwrap_or_default();
    if iso.trim().is_empty() {
        assert_eq!(status_of(&items, "isolcpus"), Status::Warn);
        assert_ne!(host::exit_code(&items, true), 0, "--strict must fail without isolated cores");
    }
    if !f.preempt_rt {
        assert_ne!(status_of(&items, "preemption"), Status::Pass);
    }
    assert!(!f.kernel_release.is_empty());
    assert!(f.af_xdp.detail.contains("AF_XDP"), "{}", f.af_xdp.detail);
    assert!(f.io_uring.detail.contains("io_uring_setup"), "{}", f.io_uring.detail);
    for i in &items {
        assert!(i.status == Status::Pass || !i.fix.is_empty(), "{} has no fix", i.name);
    }
}
