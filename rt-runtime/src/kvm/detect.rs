//! Which accelerator a guest really gets: hardware KVM, or TCG emulation.
//!
//! The existence of `/dev/kvm` proves nothing (nested and paravirtual
//! hypervisors expose one on which a stock kernel does not boot). The
//! decision takes three steps:
//! 1. QEMU must exist, else the deployment is unavailable (with the install
//!    command).
//! 2. The host must look like hardware KVM: the vendor module `kvm_intel` or
//!    `kvm_amd` loaded (`/sys/module/…`), `/dev/kvm` present. Anything else
//!    (e.g. `kvm_pvm`, or no module) → TCG, with the reason.
//! 3. A probe guest (the guest kernel with a busybox init printing
//!    `CRANLAB-PROBE-OK`) must reach its init under `-accel kvm -cpu host`
//!    within a timeout. If it does not → TCG, with what the probe saw.
//!
//! The outcome is cached per boot in `/run/cranlab/kvm-probe.json`, keyed by
//! boot id, host kernel, QEMU version and guest kernel package.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::image::{build_guest_image, ImageOptions};
use super::qemu::{find_qemu, qemu_version, GuestCmdline};
use crate::deploy::DeployError;

/// Default probe cache file.
pub const PROBE_CACHE: &str = "/run/cranlab/kvm-probe.json";

/// The accelerator a guest runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware KVM.
    Kvm,
    /// QEMU's TCG emulation.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`, the `virtualization` label of results.
    pub fn label(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Filesystem roots the host facts are read from (fakes in tests).
#[derive(Debug, Clone)]
pub struct HostRoots {
    /// Normally `/proc`.
    pub proc_root: PathBuf,
    /// Normally `/sys`.
    pub sys_root: PathBuf,
    /// Normally `/dev`.
    pub dev_root: PathBuf,
}

impl Default for HostRoots {
    fn default() -> Self {
        HostRoots { proc_root: "/proc".into(), sys_root: "/sys".into(), dev_root: "/dev".into() }
    }
}

/// What the host shows about virtualisation support.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmHostFacts {
    /// `kvm_intel` or `kvm_amd` when loaded.
    pub vendor_module: Option<String>,
    /// All `kvm*` modules in /sys/module (e.g. `kvm`, `kvm_pvm`).
    pub kvm_modules: Vec<String>,
    /// `/dev/kvm` exists.
    pub dev_kvm: bool,
    /// `vmx` or `svm` in /proc/cpuinfo flags.
    pub cpu_flag: Option<String>,
    /// `hypervisor` flag: this host is itself a guest (nested virtualisation).
    pub nested: bool,
}

/// Reads [`KvmHostFacts`] under `roots`.
pub fn read_host_facts(roots: &HostRoots) -> KvmHostFacts {
    let mut kvm_modules: Vec<String> = fs::read_dir(roots.sys_root.join("module"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n == "kvm" || n.starts_with("kvm_"))
                .collect()
        })
        .unwrap_or_default();
    kvm_modules.sort();
    let vendor_module = ["kvm_intel", "kvm_amd"].into_iter().find(|m| kvm_modules.iter().any(|k| k == m)).map(str::to_string);
    let cpuinfo = fs::read_to_string(roots.proc_root.join("cpuinfo")).unwrap_or_default();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags").and_then(|r| r.split_once(':')).map(|(_, f)| f))
        .map(|f| f.split_whitespace().collect())
        .unwrap_or_default();
    KvmHostFacts {
        vendor_module,
        kvm_modules,
        dev_kvm: roots.dev_root.join("kvm").exists(),
        cpu_flag: ["vmx", "svm"].into_iter().find(|f| flags.contains(f)).map(str::to_string),
        nested: flags.contains(&"hypervisor"),
    }
}

/// Step 2: whether a KVM probe is worth running, or why not.
pub fn precheck(f: &KvmHostFacts) -> Result<(), String> {
    if f.vendor_module.is_none() {
        let found = if f.kvm_modules.is_empty() { "none".to_string() } else { f.kvm_modules.join(", ") };
        return Err(format!(
            "no hardware KVM: neither kvm_intel nor kvm_amd is loaded (kvm modules found: {found}){}",
            if f.dev_kvm { "; the /dev/kvm present here is not hardware KVM" } else { "" }
        ));
    }
    if !f.dev_kvm {
        return Err(format!("{} is loaded but /dev/kvm is missing", f.vendor_module.as_deref().unwrap_or("kvm")));
    }
    Ok(())
}

/// What the probe guest did under `-accel kvm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeOutcome {
    /// It reached its init; boot time in ms.
    Ran {
        /// QEMU start to `CRANLAB-PROBE-OK`.
        boot_ms: u64,
    },
    /// It did not.
    Failed {
        /// What was seen (QEMU's stderr, console tail).
        detail: String,
    },
}

/// The decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelDecision {
    /// The accelerator to use.
    pub accel: Accel,
    /// QEMU binary.
    pub qemu: PathBuf,
    /// QEMU version line.
    pub qemu_version: String,
    /// Host facts the decision used.
    pub host: KvmHostFacts,
    /// The probe's outcome, when one ran.
    pub probe: Option<ProbeOutcome>,
    /// Why, in plain sentences.
    pub reasons: Vec<String>,
}

impl AccelDecision {
    /// `kvm` or `tcg`.
    pub fn label(&self) -> &'static str {
        self.accel.label()
    }

    /// Notes for `GrantedFacts.notes`: TCG always says what it is.
    pub fn notes(&self) -> Vec<String> {
        match self.accel {
            Accel::Kvm => Vec::new(),
            Accel::Tcg => {
                let mut n = vec![
                    "virtualization is TCG emulation, not KVM: its latency figures say nothing about KVM latency".to_string(),
                ];
                n.extend(self.reasons.iter().cloned());
                n
            }
        }
    }
}

/// Step 3: the decision from the host facts and the probe's outcome.
pub fn decide(facts: &KvmHostFacts, probe: Option<&ProbeOutcome>) -> (Accel, Vec<String>) {
    if let Err(why) = precheck(facts) {
        return (Accel::Tcg, vec![why]);
    }
    let m = facts.vendor_module.clone().unwrap_or_default();
    match probe {
        Some(ProbeOutcome::Ran { boot_ms }) => {
            (Accel::Kvm, vec![format!("{m} loaded and a probe guest reached its init under -accel kvm in {boot_ms} ms")])
        }
        Some(ProbeOutcome::Failed { detail }) => {
            (Accel::Tcg, vec![format!("{m} is loaded but a probe guest did not run under -accel kvm: {detail}")])
        }
        None => (Accel::Tcg, vec![format!("{m} is loaded but no probe guest was run")]),
    }
}

/// Options of [`detect_accel_with`].
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// Host roots.
    pub roots: HostRoots,
    /// Image options (probe kernel).
    pub image: ImageOptions,
    /// Probe cache file (`None`: no cache).
    pub cache: Option<PathBuf>,
    /// How long the probe guest may take to reach its init.
    pub probe_timeout: Duration,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions {
            roots: HostRoots::default(),
            image: ImageOptions::default(),
            cache: Some(PROBE_CACHE.into()),
            probe_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    key: String,
    decision: AccelDecision,
}

/// [`detect_accel_with`] with the defaults.
pub fn detect_accel() -> Result<AccelDecision, DeployError> {
    detect_accel_with(&DetectOptions::default())
}

/// Detects the accelerator (see the module docs). QEMU missing →
/// `DeployError::Unavailable` naming the package to install.
pub fn detect_accel_with(opts: &DetectOptions) -> Result<AccelDecision, DeployError> {
    let qemu = find_qemu().ok_or_else(|| DeployError::Unavailable {
        deployment: "kvm",
        reason: "qemu-system-x86_64 not found (apt-get install qemu-system-x86)".into(),
    })?;
    let version = qemu_version(&qemu).unwrap_or_else(|| "unknown".into());
    let facts = read_host_facts(&opts.roots);
    if precheck(&facts).is_err() {
        let (accel, reasons) = decide(&facts, None);
        return Ok(AccelDecision { accel, qemu, qemu_version: version, host: facts, probe: None, reasons });
    }
    let boot_id = fs::read_to_string(opts.roots.proc_root.join("sys/kernel/random/boot_id")).unwrap_or_default();
    let osrel = fs::read_to_string(opts.roots.proc_root.join("sys/kernel/osrelease")).unwrap_or_default();
    let key = format!("{}|{}|{}|{}", boot_id.trim(), osrel.trim(), version, opts.image.flavour.meta_package());
    if let Some(c) = &opts.cache {
        if let Ok(s) = fs::read_to_string(c) {
            if let Ok(cf) = serde_json::from_str::<CacheFile>(&s) {
                if cf.key == key {
                    return Ok(cf.decision);
                }
            }
        }
    }
    let outcome = run_probe(&qemu, &opts.image, opts.probe_timeout);
    let (accel, reasons) = decide(&facts, Some(&outcome));
    let d = AccelDecision { accel, qemu, qemu_version: version, host: facts, probe: Some(outcome), reasons };
    if let Some(c) = &opts.cache {
        if let Some(dir) = c.parent() {
            let _ = fs::create_dir_all(dir);
        }
        if let Ok(s) = serde_json::to_string_pretty(&CacheFile { key, decision: d.clone() }) {
            let _ = fs::write(c, s);
        }
    }
    Ok(d)
}

/// Boots the probe image under `-accel kvm -cpu host` and waits for its
/// `CRANLAB-PROBE-OK` line.
pub fn run_probe(qemu: &Path, image: &ImageOptions, timeout: Duration) -> ProbeOutcome {
    let img = match build_guest_image(image, None) {
        Ok(i) => i,
        Err(e) => return ProbeOutcome::Failed { detail: format!("could not build the probe image: {e}") },
    };
    let dir = std::env::temp_dir().join(format!("cranlab-kvm-probe-{}", std::process::id()));
    let _ = fs::create_dir_all(&dir);
    let log = dir.join("console.log");
    let append = GuestCmdline {
        worker_vcpus: vec![],
        housekeeping_vcpus: vec![],
        sched: "other".into(),
        ifname: "eth0".into(),
        args: vec![],
        tsc_khz: None,
        probe: true,
        addr: None,
    }
    .render(&img.kernel.features)
    .unwrap_or_default();
    let start = Instant::now();
    let mut cmd = Command::new(qemu);
    cmd.args(["-name", "cranlab-probe", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot"])
        .args(["-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "128M", "-smp", "1", "-display", "none"])
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .arg("-kernel")
        .arg(&img.kernel.kernel)
        .arg("-initrd")
        .arg(&img.initramfs)
        .arg("-append")
        .arg(append)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    super::sys::prepare_child(&mut cmd, None);
    let mut child = match super::spawn_from_keeper(cmd) {
        Ok(c) => c,
        Err(e) => return ProbeOutcome::Failed { detail: format!("start {}: {e}", qemu.display()) },
    };
    let outcome = loop {
        let console = fs::read_to_string(&log).unwrap_or_default();
        if console.contains("CRANLAB-PROBE-OK") {
            break ProbeOutcome::Ran { boot_ms: start.elapsed().as_millis() as u64 };
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            break ProbeOutcome::Failed {
                detail: format!("qemu exited ({st}) before the guest's init: {}", super::tail(&format!("{err}\n{console}"), 4)),
            };
        }
        if start.elapsed() > timeout {
            break ProbeOutcome::Failed {
                detail: format!("guest did not reach its init within {timeout:?}: {}", super::tail(&console, 4)),
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = fs::remove_dir_all(&dir);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(PathBuf);
    impl Fake {
        fn new(tag: &str, modules: &[&str], dev_kvm: bool, flags: &str) -> Fake {
            let d = std::env::temp_dir().join(format!("cranlab-kvm-detect-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            for m in modules {
                fs::create_dir_all(d.join("sys/module").join(m)).unwrap();
            }
            fs::create_dir_all(d.join("sys/module/e1000")).unwrap();
            fs::create_dir_all(d.join("proc")).unwrap();
            fs::create_dir_all(d.join("dev")).unwrap();
            fs::write(d.join("proc/cpuinfo"), format!("processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")).unwrap();
            if dev_kvm {
                fs::write(d.join("dev/kvm"), "").unwrap();
            }
            Fake(d)
        }
        fn roots(&self) -> HostRoots {
            HostRoots { proc_root: self.0.join("proc"), sys_root: self.0.join("sys"), dev_root: self.0.join("dev") }
        }
    }
    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn paravirtual_dev_kvm_is_not_hardware_kvm() {
        // This machine: kvm + kvm_pvm, /dev/kvm present, no vmx/svm, hypervisor flag.
        let f = Fake::new("pvm", &["kvm", "kvm_pvm"], true, "hypervisor");
        let facts = read_host_facts(&f.roots());
        assert_eq!(facts.kvm_modules, ["kvm", "kvm_pvm"]);
        assert_eq!(facts.vendor_module, None);
        assert!(facts.dev_kvm && facts.nested && facts.cpu_flag.is_none());
        let (a, why) = decide(&facts, None);
        assert_eq!(a, Accel::Tcg);
        assert!(why[0].contains("kvm_pvm") && why[0].contains("not hardware KVM"), "{why:?}");
    }

    #[test]
    fn no_modules_at_all_is_tcg() {
        let f = Fake::new("none", &[], false, "");
        let (a, why) = decide(&read_host_facts(&f.roots()), None);
        assert_eq!(a, Accel::Tcg);
        assert!(why[0].contains("found: none"), "{why:?}");
    }

    #[test]
    fn vendor_module_without_dev_kvm_is_tcg() {
        let f = Fake::new("nodev", &["kvm", "kvm_intel"], false, "vmx");
        let facts = read_host_facts(&f.roots());
        assert_eq!(facts.vendor_module.as_deref(), Some("kvm_intel"));
        assert_eq!(facts.cpu_flag.as_deref(), Some("vmx"));
        let (a, why) = decide(&facts, Some(&ProbeOutcome::Ran { boot_ms: 300 }));
        assert_eq!(a, Accel::Tcg);
        assert!(why[0].contains("/dev/kvm is missing"), "{why:?}");
    }

    #[test]
    fn hardware_kvm_needs_a_probe_that_ran() {
        let f = Fake::new("hw", &["kvm", "kvm_amd"], true, "svm");
        let facts = read_host_facts(&f.roots());
        assert!(precheck(&facts).is_ok());
        assert_eq!(decide(&facts, Some(&ProbeOutcome::Ran { boot_ms: 250 })).0, Accel::Kvm);
        let (a, why) = decide(&facts, Some(&ProbeOutcome::Failed { detail: "KVM: entry failed".into() }));
        assert_eq!(a, Accel::Tcg);
        assert!(why[0].contains("entry failed"));
        assert_eq!(decide(&facts, None).0, Accel::Tcg);
    }

    #[test]
    fn tcg_decision_carries_the_emulation_note() {
        let d = AccelDecision {
            accel: Accel::Tcg,
            qemu: "/usr/bin/qemu-system-x86_64".into(),
            qemu_version: "x".into(),
            host: KvmHostFacts::default(),
            probe: None,
            reasons: vec!["no hardware KVM".into()],
        };
        assert_eq!(d.label(), "tcg");
        assert!(d.notes()[0].contains("say nothing about KVM latency"));
        assert_eq!(d.notes().len(), 2);
        let k = AccelDecision { accel: Accel::Kvm, ..d };
        assert_eq!(k.label(), "kvm");
        assert!(k.notes().is_empty());
    }
}
