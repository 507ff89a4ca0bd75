//! The QEMU command line and the guest kernel command line, built as plain
//! data so tests can check them without starting anything.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::detect::Accel;
use super::image::KernelFeatures;

/// Prefix of every VM name (`-name cranlab-…`); [`super::sweep`] looks for it.
pub const VM_NAME_PREFIX: &str = "cranlab-";

/// Longest kernel command line x86 accepts (COMMAND_LINE_SIZE - 1).
pub const CMDLINE_MAX: usize = 2047;

/// QEMU machine type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `-M microvm`: virtio-mmio devices described by ACPI, no PCI.
    Microvm,
    /// `-M q35`: the PC fallback, virtio over PCI.
    Q35,
}

/// The fronthaul NIC of the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapNic {
    /// Tap device name (in the namespace QEMU runs in).
    pub ifname: String,
    /// Guest MAC.
    pub mac: [u8; 6],
    /// `vhost=on` (needs /dev/vhost-net and KVM).
    pub vhost: bool,
}

/// Everything needed to start one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// VM name; must start with [`VM_NAME_PREFIX`].
    pub name: String,
    /// Accelerator.
    pub accel: Accel,
    /// Machine type.
    pub machine: Machine,
    /// Kernel (vmlinux or bzImage).
    pub kernel: PathBuf,
    /// Initramfs.
    pub initramfs: PathBuf,
    /// Guest kernel command line.
    pub append: String,
    /// Guest RAM, MiB.
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub vcpus: usize,
    /// File receiving the serial console.
    pub serial_log: PathBuf,
    /// QMP unix socket.
    pub qmp_socket: PathBuf,
    /// Control channel (virtio-serial port `cranlab.ctl`) unix socket.
    pub ctl_socket: PathBuf,
    /// The fronthaul NIC.
    pub nic: Option<TapNic>,
    /// Start paused (`-S`): vCPUs are pinned before the guest runs.
    pub paused: bool,
    /// CPU model instead of the default (`host` under KVM, `max` under TCG).
    pub cpu_model: Option<String>,
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

impl QemuConfig {
    /// The arguments after the program name.
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-name");
        push(&format!("{},debug-threads=on", self.name));
        push("-nodefaults");
        push("-no-user-config");
        push("-nographic");
        push("-no-reboot");
        if self.paused {
            push("-S");
        }
        push("-M");
        push(match self.machine {
            Machine::Microvm => "microvm",
            Machine::Q35 => "q35",
        });
        let (accel, cpu) = match self.accel {
            Accel::Kvm => ("kvm", "host"),
            Accel::Tcg => ("tcg,thread=multi", "max"),
        };
        push("-accel");
        push(accel);
        push("-cpu");
        push(self.cpu_model.as_deref().unwrap_or(cpu));
        push("-m");
        push(&format!("{}M", self.memory_mib));
        push("-smp");
        push(&self.vcpus.to_string());
        push("-display");
        push("none");
        push("-monitor");
        push("none");
        push("-serial");
        push(&format!("file:{}", self.serial_log.display()));
        push("-qmp");
        push(&format!("unix:{},server=on,wait=off", self.qmp_socket.display()));
        let (serial_dev, net_dev) = match self.machine {
            Machine::Microvm => ("virtio-serial-device", "virtio-net-device"),
            Machine::Q35 => ("virtio-serial-pci", "virtio-net-pci"),
        };
        push("-chardev");
        push(&format!("socket,id=ctl,path={},server=on,wait=off", self.ctl_socket.display()));
        push("-device");
        push(serial_dev);
        push("-device");
        push("virtserialport,chardev=ctl,name=cranlab.ctl");
        if let Some(n) = &self.nic {
            push("-netdev");
            push(&format!(
                "tap,id=fh0,ifname={},script=no,downscript=no{}",
                n.ifname,
                if n.vhost { ",vhost=on" } else { "" }
            ));
            push("-device");
            // q35: no iPXE option ROM (nothing boots from the network; saves boot time).
            let rom = if self.machine == Machine::Q35 { ",romfile=" } else { "" };
            push(&format!("{net_dev},netdev=fh0,mac={}{rom}", fmt_mac(&n.mac)));
        }
        a.push("-kernel".into());
        a.push(self.kernel.clone().into());
        a.push("-initrd".into());
        a.push(self.initramfs.clone().into());
        a.push("-append".into());
        a.push(self.append.clone().into());
        a
    }
}

/// What the guest init must do, rendered onto the kernel command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCmdline {
    /// vCPUs given to the worker (guest numbering).
    pub worker_vcpus: Vec<usize>,
    /// vCPUs left for housekeeping (guest kernel, init, IRQs).
    pub housekeeping_vcpus: Vec<usize>,
    /// `fifo:PRIO` or `other`.
    pub sched: String,
    /// Interface name in the guest.
    pub ifname: String,
    /// Worker arguments (after `--`).
    pub args: Vec<String>,
    /// TSC frequency in kHz for `tsc_early_khz` (TCG), if known. Also adds
    /// `tsc=reliable`: multi-threaded TCG vCPUs fail the guest kernel's TSC
    /// sync check, and the guest would fall back to refined-jiffies (one
    /// tick, 4 ms at HZ=250, of clock resolution), although every vCPU's TSC
    /// is read from the host's synchronised TSC.
    pub tsc_khz: Option<u64>,
    /// `cranlab.mode=probe` instead of running a worker.
    pub probe: bool,
    /// IPv4 address the guest puts on `ifname` (`cranlab.addr=`), if any.
    pub addr: Option<crate::net::IfAddr>,
}

/// The guest's vCPU layout for a worker on host cores `cpus`: the worker's
/// vCPUs carry the same numbers as its host cores, so a worker flag such as
/// `--cpu 1` means the same core inside the guest as on the host; every other
/// vCPU (at least one) is housekeeping. Returns (vCPU count, worker vCPUs,
/// housekeeping vCPUs). Above [`MAX_IDENTITY_VCPUS`] the worker gets vCPUs
/// 1..=n instead (flags naming host cores then differ inside the guest).
pub fn vcpu_layout(cpus: &[usize]) -> (usize, Vec<usize>, Vec<usize>) {
    let n = cpus.len();
    let max = cpus.iter().copied().max().unwrap_or(0);
    let mut worker: Vec<usize> = cpus.to_vec();
    let mut count = (max + 1).max(n + 1);
    if count > MAX_IDENTITY_VCPUS {
        worker = (1..=n).collect();
        count = n + 1;
    }
    let hk = (0..count).filter(|c| !worker.contains(c)).collect();
    (count, worker, hk)
}

/// Largest guest for the identity vCPU numbering of [`vcpu_layout`].
pub const MAX_IDENTITY_VCPUS: usize = 8;

/// Why a command line cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("guest kernel command line: {0}")]
pub struct CmdlineError(pub String);

fn cpu_list(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(",")
}

impl GuestCmdline {
    /// Renders the command line for a kernel with `features`.
    pub fn render(&self, features: &KernelFeatures) -> Result<String, CmdlineError> {
        let mut c: Vec<String> = vec!["console=ttyS0".into(), "quiet".into(), "loglevel=4".into(), "panic=-1".into()];
        if let Some(k) = self.tsc_khz {
            c.push(format!("tsc_early_khz={k}"));
            c.push("tsc=reliable".into());
        }
        if !self.probe && !self.worker_vcpus.is_empty() {
            let l = cpu_list(&self.worker_vcpus);
            c.push(format!("isolcpus={l}"));
            if features.no_hz_full {
                c.push(format!("nohz_full={l}"));
            }
            if features.rcu_nocb {
                c.push(format!("rcu_nocbs={l}"));
            }
            if !self.housekeeping_vcpus.is_empty() {
                c.push(format!("irqaffinity={}", cpu_list(&self.housekeeping_vcpus)));
            }
        }
        c.push(format!("cranlab.mode={}", if self.probe { "probe" } else { "worker" }));
        if !self.probe {
            let mut settings = vec![("cpus", cpu_list(&self.worker_vcpus)), ("sched", self.sched.clone()), ("ifname", self.ifname.clone())];
            if let Some(a) = self.addr {
                settings.push(("addr", a.to_string()));
            }
            for (k, v) in settings {
                check_token(&v).map_err(|e| CmdlineError(format!("cranlab.{k}={v:?}: {e}")))?;
                c.push(format!("cranlab.{k}={v}"));
            }
            c.push("--".into());
            for a in &self.args {
                check_token(a).map_err(|e| CmdlineError(format!("worker argument {a:?}: {e}")))?;
                c.push(a.clone());
            }
        }
        let s = c.join(" ");
        if s.len() > CMDLINE_MAX {
            return Err(CmdlineError(format!("{} bytes, the kernel takes at most {CMDLINE_MAX}", s.len())));
        }
        Ok(s)
    }
}

/// A token the kernel passes through unchanged: non-empty, printable ASCII,
/// no whitespace or quotes.
pub fn check_token(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty".into());
    }
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic() || *c == '"' || *c == '\'') {
        return Err(format!("contains {c:?}; the guest kernel command line takes no spaces, quotes or non-ascii"));
    }
    Ok(())
}

/// Finds `qemu-system-x86_64` on PATH.
pub fn find_qemu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join("qemu-system-x86_64")).find(|p| p.is_file())
}

/// `qemu-system-x86_64 --version`, first line.
pub fn qemu_version(qemu: &Path) -> Option<String> {
    let out = Command::new(qemu).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string)
}

/// Whether this QEMU has the microvm machine.
pub fn has_microvm(qemu: &Path) -> bool {
    Command::new(qemu)
        .args(["-M", "help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("microvm ")))
        .unwrap_or(false)
}

/// Host TSC frequency in kHz, from `/proc/cpuinfo` ("cpu MHz" of the first CPU).
pub fn host_tsc_khz(cpuinfo: &str) -> Option<u64> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "cpu MHz").then(|| v.trim().parse::<f64>().ok().map(|m| (m * 1000.0) as u64))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> QemuConfig {
        QemuConfig {
            name: "cranlab-w0".into(),
            accel: Accel::Tcg,
            machine: Machine::Microvm,
            kernel: "/c/vmlinux".into(),
            initramfs: "/c/i.cpio".into(),
            append: "console=ttyS0".into(),
            memory_mib: 256,
            vcpus: 2,
            serial_log: "/l/w0.log".into(),
            qmp_socket: "/run/cranlab/kvm/cranlab-w0/qmp.sock".into(),
            ctl_socket: "/run/cranlab/kvm/cranlab-w0/ctl.sock".into(),
            nic: Some(TapNic { ifname: "cranlab01t".into(), mac: [2, 0xc7, 0, 0, 1, 0xff], vhost: false }),
            paused: true,
            cpu_model: None,
        }
    }

    fn joined(c: &QemuConfig) -> String {
        c.args().iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn tcg_microvm_command_line() {
        let s = joined(&cfg());
        for want in [
            "-name cranlab-w0,debug-threads=on",
            "-nodefaults -no-user-config",
            "-S -M microvm -accel tcg,thread=multi -cpu max -m 256M -smp 2",
            "-serial file:/l/w0.log",
            "-qmp unix:/run/cranlab/kvm/cranlab-w0/qmp.sock,server=on,wait=off",
            "-netdev tap,id=fh0,ifname=cranlab01t,script=no,downscript=no -device virtio-net-device,netdev=fh0,mac=02:c7:00:00:01:ff",
            "-device virtio-serial-device",
            "-kernel /c/vmlinux -initrd /c/i.cpio -append console=ttyS0",
        ] {
            assert!(s.contains(want), "missing {want:?} in {s}");
        }
        assert!(!s.contains("-accel kvm") && !s.contains("-cpu host"), "{s}");
    }

    #[test]
    fn kvm_q35_uses_host_cpu_pci_devices_and_vhost() {
        let mut c = cfg();
        c.accel = Accel::Kvm;
        c.machine = Machine::Q35;
        c.paused = false;
        c.nic.as_mut().unwrap().vhost = true;
        let s = joined(&c);
        assert!(s.contains("-M q35 -accel kvm -cpu host"), "{s}");
        assert!(s.contains("vhost=on -device virtio-net-pci,netdev=fh0,mac=02:c7:00:00:01:ff,romfile="), "{s}");
        assert!(s.contains("-device virtio-serial-pci"), "{s}");
        assert!(!s.contains(" -S "), "{s}");
        c.cpu_model = Some("Skylake-Server".into());
        assert!(joined(&c).contains("-accel kvm -cpu Skylake-Server"));
    }

    fn gc() -> GuestCmdline {
        GuestCmdline {
            worker_vcpus: vec![1],
            housekeeping_vcpus: vec![0],
            sched: "fifo:80".into(),
            ifname: "fh0".into(),
            args: vec!["--iface".into(), "fh0".into(), "--mlock".into()],
            tsc_khz: Some(2_596_130),
            probe: false,
            addr: None,
        }
    }

    #[test]
    fn guest_cmdline_isolates_the_worker_vcpu_where_supported() {
        let all = KernelFeatures { no_hz_full: true, rcu_nocb: true, preempt_rt: false, pvh: true };
        let s = gc().render(&all).unwrap();
        assert_eq!(
            s,
            "console=ttyS0 quiet loglevel=4 panic=-1 tsc_early_khz=2596130 tsc=reliable isolcpus=1 nohz_full=1 rcu_nocbs=1 \
             irqaffinity=0 cranlab.mode=worker cranlab.cpus=1 cranlab.sched=fifo:80 cranlab.ifname=fh0 -- --iface fh0 --mlock"
        );
        let none = KernelFeatures::default();
        let s = gc().render(&none).unwrap();
        assert!(s.contains("isolcpus=1") && !s.contains("nohz_full") && !s.contains("rcu_nocbs"));
    }

    #[test]
    fn guest_cmdline_carries_the_interface_address_before_the_worker_arguments() {
        let mut g = gc();
        g.addr = Some("10.213.0.2/30".parse().unwrap());
        let s = g.render(&KernelFeatures::default()).unwrap();
        assert!(s.contains("cranlab.ifname=fh0 cranlab.addr=10.213.0.2/30 -- --iface"), "{s}");
        assert!(!gc().render(&KernelFeatures::default()).unwrap().contains("cranlab.addr"));
    }

    #[test]
    fn guest_cmdline_rejects_spaces_quotes_and_overlong() {
        let f = KernelFeatures::default();
        let mut g = gc();
        g.args.push("two words".into());
        assert!(g.render(&f).unwrap_err().0.contains("\"two words\""));
        let mut g = gc();
        g.args.push("a\"b".into());
        assert!(g.render(&f).is_err());
        let mut g = gc();
        g.args.push(String::new());
        assert!(g.render(&f).is_err());
        let mut g = gc();
        g.args = vec!["x".repeat(3000)];
        assert!(g.render(&f).unwrap_err().0.contains("at most 2047"));
    }

    #[test]
    fn vcpu_layout_keeps_host_core_numbers() {
        assert_eq!(vcpu_layout(&[1]), (2, vec![1], vec![0]));
        assert_eq!(vcpu_layout(&[0]), (2, vec![0], vec![1]));
        assert_eq!(vcpu_layout(&[2, 3]), (4, vec![2, 3], vec![0, 1]));
        assert_eq!(vcpu_layout(&[0, 1]), (3, vec![0, 1], vec![2]));
        assert_eq!(vcpu_layout(&[31]), (2, vec![1], vec![0]));
    }

    #[test]
    fn probe_cmdline_has_no_worker() {
        let mut g = gc();
        g.probe = true;
        let s = g.render(&KernelFeatures::default()).unwrap();
        assert!(s.ends_with("cranlab.mode=probe"), "{s}");
        assert!(!s.contains("isolcpus"));
    }

    #[test]
    fn tsc_khz_from_cpuinfo() {
        assert_eq!(host_tsc_khz("processor\t: 0\ncpu MHz\t\t: 2596.130\n"), Some(2_596_130));
        assert_eq!(host_tsc_khz("processor\t: 0\n"), None);
    }
}
