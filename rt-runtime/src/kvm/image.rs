//! The guest image: a Debian kernel (from apt) and an initramfs holding the
//! worker, a static busybox, util-linux `chrt`, the virtio modules and the
//! cranlab init (`scripts/guest/init`).
//!
//! Everything comes from registry packages: the kernel is the versioned
//! package `linux-image-amd64` (or `linux-image-rt-amd64`) depends on,
//! fetched with `apt-get download` and unpacked with `dpkg-deb -x`; its
//! compressed payload is decompressed into an uncompressed `vmlinux` (QEMU's
//! microvm boots the ELF through its PVH entry, measured here about 2.5 s
//! faster under TCG than letting the bzImage decompress itself). `depmod -b`
//! produces `modules.dep`, from which the load order of the virtio modules is
//! taken. Results are cached under a cache directory: the kernel per package
//! and version, the initramfs per content hash of everything in it.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cpio::{self, Entry};

/// The guest init script, compiled in so the library works from any directory.
pub const GUEST_INIT: &str = include_str!("../../../scripts/guest/init");

/// Modules the guest needs, by name; dependencies are added from modules.dep.
pub const GUEST_MODULES: &[&str] = &["virtio_mmio", "virtio_pci", "virtio_net", "virtio_console"];

/// Default cache directory for kernels and initramfs images.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/cranlab/guest";

/// Which Debian kernel the guest boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KernelFlavour {
    /// `linux-image-amd64` (PREEMPT_DYNAMIC).
    #[default]
    Standard,
    /// `linux-image-rt-amd64` (PREEMPT_RT).
    Rt,
}

impl KernelFlavour {
    /// The Debian meta package.
    pub fn meta_package(self) -> &'static str {
        match self {
            KernelFlavour::Standard => "linux-image-amd64",
            KernelFlavour::Rt => "linux-image-rt-amd64",
        }
    }
}

/// Errors from building the guest image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A tool ran and failed.
    #[error("{step}: `{cmd}` failed: {stderr}")]
    Tool {
        /// What was being done.
        step: String,
        /// The command line.
        cmd: String,
        /// Its stderr (last lines).
        stderr: String,
    },
    /// A tool or file could not be used.
    #[error("{step}: {err}")]
    Io {
        /// What was being done.
        step: String,
        /// The cause.
        err: std::io::Error,
    },
    /// Input that does not fit.
    #[error("{0}")]
    Bad(String),
}

fn io(step: impl Into<String>) -> impl FnOnce(std::io::Error) -> ImageError {
    let step = step.into();
    move |err| ImageError::Io { step, err }
}

fn run(step: &str, cmd: &mut Command) -> Result<String, ImageError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.stdin(Stdio::null()).output().map_err(io(format!("{step}: run {shown}")))?;
    if !out.status.success() {
        let e = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = e.lines().rev().take(4).collect();
        return Err(ImageError::Tool {
            step: step.into(),
            cmd: shown,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the guest kernel supports, from its `config-*` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelFeatures {
    /// `CONFIG_NO_HZ_FULL=y` (nohz_full= works).
    pub no_hz_full: bool,
    /// `CONFIG_RCU_NOCB_CPU=y` (rcu_nocbs= works).
    pub rcu_nocb: bool,
    /// `CONFIG_PREEMPT_RT=y`.
    pub preempt_rt: bool,
    /// `CONFIG_PVH=y` (an uncompressed vmlinux boots directly).
    pub pvh: bool,
}

impl KernelFeatures {
    /// Parses a kernel `.config`.
    pub fn from_config(config: &str) -> Self {
        let on = |k: &str| config.lines().any(|l| l.trim() == format!("{k}=y"));
        KernelFeatures {
            no_hz_full: on("CONFIG_NO_HZ_FULL"),
            rcu_nocb: on("CONFIG_RCU_NOCB_CPU"),
            preempt_rt: on("CONFIG_PREEMPT_RT"),
            pvh: on("CONFIG_PVH"),
        }
    }
}

/// A guest kernel unpacked in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestKernel {
    /// Versioned Debian package, e.g. `linux-image-6.1.0-57-amd64`.
    pub package: String,
    /// Its version, e.g. `6.1.192-3`.
    pub version: String,
    /// Kernel release (`uname -r` in the guest), e.g. `6.1.0-57-amd64`.
    pub release: String,
    /// The kernel QEMU boots: uncompressed vmlinux where it could be made,
    /// else the bzImage.
    pub kernel: PathBuf,
    /// Whether `kernel` is an uncompressed ELF vmlinux.
    pub uncompressed: bool,
    /// Directory holding the needed modules (flat) and `modules.load`.
    pub modules_dir: PathBuf,
    /// Module file names in load order (dependencies first).
    pub modules: Vec<String>,
    /// What the kernel supports.
    pub features: KernelFeatures,
}

/// Parses `apt-cache depends META` output for the versioned image package.
pub fn parse_versioned_package(depends_output: &str) -> Option<String> {
    depends_output.lines().find_map(|l| {
        let l = l.trim().trim_start_matches('|');
        let p = l.strip_prefix("Depends:")?.trim();
        (p.starts_with("linux-image-") && p.chars().nth(12).is_some_and(|c| c.is_ascii_digit())).then(|| p.to_string())
    })
}

/// Load order (dependencies first, each once) of `wanted` module names from
/// the text of a `modules.dep`. Returns paths relative to the modules
/// directory. Names use `_` or `-` interchangeably; unknown names are an error.
pub fn module_load_order(modules_dep: &str, wanted: &[&str]) -> Result<Vec<String>, ImageError> {
    let mut deps: std::collections::HashMap<String, (String, Vec<String>)> = Default::default();
    for line in modules_dep.lines() {
        let Some((path, rest)) = line.split_once(':') else { continue };
        let d: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
        deps.insert(module_name(path), (path.to_string(), d));
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        name: &str,
        deps: &std::collections::HashMap<String, (String, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), ImageError> {
        if depth > 64 {
            return Err(ImageError::Bad(format!("modules.dep: dependency loop at {name}")));
        }
        if seen.contains(name) {
            return Ok(());
        }
        let (path, d) = deps
            .get(name)
            .ok_or_else(|| ImageError::Bad(format!("modules.dep: no module {name} (built in, or not in this kernel?)")))?;
        // modules.dep lists dependencies so that loading them from the last to the first works.
        for dep in d.iter().rev() {
            visit(&module_name(dep), deps, seen, order, depth + 1)?;
        }
        seen.insert(name.to_string());
        order.push(path.clone());
        Ok(())
    }
    for w in wanted {
        visit(&w.replace('-', "_"), &deps, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

/// `kernel/drivers/net/virtio_net.ko.xz` → `virtio_net`.
fn module_name(path: &str) -> String {
    let f = path.rsplit('/').next().unwrap_or(path);
    f.split(".ko").next().unwrap_or(f).replace('-', "_")
}

/// Offset of the first XZ stream in a bzImage.
pub fn find_xz_payload(bzimage: &[u8]) -> Option<usize> {
    const MAGIC: &[u8] = b"\xfd7zXZ\x00";
    bzimage.windows(MAGIC.len()).position(|w| w == MAGIC)
}

/// Fetches (once) and unpacks the guest kernel into `cache_dir/kernel/`.
/// Needs network only the first time (`apt-get download`); later calls reuse
/// the cache. The versioned package is resolved from the local apt lists.
pub fn fetch_kernel(cache_dir: &Path, flavour: KernelFlavour) -> Result<GuestKernel, ImageError> {
    let meta = flavour.meta_package();
    let dep = run(&format!("resolve {meta}"), Command::new("apt-cache").args(["depends", meta]))?;
    let package = parse_versioned_package(&dep).ok_or_else(|| {
        ImageError::Bad(format!("apt-cache depends {meta}: no linux-image-<version> dependency (run `apt-get update`)"))
    })?;
    let dir = cache_dir.join("kernel").join(&package);
    let meta_file = dir.join("kernel.json");
    if let Ok(s) = fs::read_to_string(&meta_file) {
        if let Ok(k) = serde_json::from_str::<GuestKernel>(&s) {
            if k.kernel.exists() && k.modules.iter().all(|m| k.modules_dir.join(m).exists()) {
                return Ok(k);
            }
        }
    }
    fs::create_dir_all(&dir).map_err(io(format!("create kernel cache {}", dir.display())))?;
    let deb = match find_deb(&dir, &package) {
        Some(d) => d,
        None => {
            run(&format!("download {package}"), Command::new("apt-get").args(["download", "-q", &package]).current_dir(&dir))?;
            find_deb(&dir, &package).ok_or_else(|| ImageError::Bad(format!("apt-get download {package} left no .deb in {}", dir.display())))?
        }
    };
    let version = deb
        .file_name()
        .and_then(|f| f.to_str())
        .and_then(|f| f.strip_prefix(&format!("{package}_")))
        .and_then(|f| f.split('_').next())
        .unwrap_or("unknown")
        .replace("%3a", ":");
    let root = dir.join("root");
    let _ = fs::remove_dir_all(&root);
    run(&format!("unpack {}", deb.display()), Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let release = fs::read_dir(root.join("lib/modules"))
        .map_err(io(format!("list {}/lib/modules", root.display())))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .next()
        .ok_or_else(|| ImageError::Bad(format!("{package} has no lib/modules/<release>")))?;
    let config = fs::read_to_string(root.join(format!("boot/config-{release}"))).map_err(io(format!("read config-{release}")))?;
    let features = KernelFeatures::from_config(&config);
    run("generate modules.dep", Command::new("depmod").arg("-b").arg(&root).arg(&release))?;
    let mdir = root.join("lib/modules").join(&release);
    let dep = fs::read_to_string(mdir.join("modules.dep")).map_err(io("read modules.dep"))?;
    let order = module_load_order(&dep, GUEST_MODULES)?;
    let modules_dir = dir.join("modules");
    let _ = fs::remove_dir_all(&modules_dir);
    fs::create_dir_all(&modules_dir).map_err(io("create modules dir"))?;
    let mut modules = Vec::new();
    for rel in &order {
        let src = mdir.join(rel);
        let name = format!("{}.ko", module_name(rel));
        let dst = modules_dir.join(&name);
        if rel.ends_with(".ko") {
            fs::copy(&src, &dst).map_err(io(format!("copy module {}", src.display())))?;
        } else if rel.ends_with(".ko.xz") {
            let out = Command::new("xz").arg("-dc").arg(&src).output().map_err(io("run xz"))?;
            if !out.status.success() {
                return Err(ImageError::Bad(format!("decompress module {rel}: xz failed")));
            }
            fs::write(&dst, out.stdout).map_err(io(format!("write {}", dst.display())))?;
        } else {
            return Err(ImageError::Bad(format!("module {rel}: unsupported compression")));
        }
        modules.push(name);
    }
    let bz = root.join(format!("boot/vmlinuz-{release}"));
    let (kernel, uncompressed) = match extract_vmlinux(&bz, &dir.join("vmlinux")) {
        Ok(p) if features.pvh => (p, true),
        _ => {
            let dst = dir.join("bzImage");
            fs::copy(&bz, &dst).map_err(io(format!("copy {}", bz.display())))?;
            (dst, false)
        }
    };
    let _ = fs::copy(root.join(format!("boot/config-{release}")), dir.join("config"));
    fs::remove_dir_all(&root).map_err(io("remove unpacked kernel tree"))?;
    let k = GuestKernel { package, version, release, kernel, uncompressed, modules_dir, modules, features };
    let json = serde_json::to_string_pretty(&k).map_err(|e| ImageError::Bad(format!("serialise kernel.json: {e}")))?;
    fs::write(&meta_file, json).map_err(io(format!("write {}", meta_file.display())))?;
    Ok(k)
}

fn find_deb(dir: &Path, package: &str) -> Option<PathBuf> {
    fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|f| f.to_str())
            .is_some_and(|f| f.starts_with(&format!("{package}_")) && f.ends_with(".deb"))
    })
}

/// Decompresses the XZ payload of a bzImage into an ELF `vmlinux` at `out`
/// (what the kernel's `scripts/extract-vmlinux` does).
pub fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<PathBuf, ImageError> {
    let data = fs::read(bzimage).map_err(io(format!("read {}", bzimage.display())))?;
    let off = find_xz_payload(&data).ok_or_else(|| ImageError::Bad(format!("{}: no xz payload", bzimage.display())))?;
    let mut child = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io("run xz (apt-get install xz-utils)"))?;
    let mut stdin = child.stdin.take().ok_or_else(|| ImageError::Bad("xz: no stdin".into()))?;
    let payload = data[off..].to_vec();
    let writer = std::thread::spawn(move || {
        // xz stops reading after the stream; a broken pipe then is expected.
        let _ = stdin.write_all(&payload);
    });
    let res = child.wait_with_output().map_err(io("wait for xz"))?;
    let _ = writer.join();
    if res.stdout.get(..4) != Some(b"\x7fELF") {
        return Err(ImageError::Bad(format!("{}: decompressed payload is not an ELF vmlinux", bzimage.display())));
    }
    fs::write(out, &res.stdout).map_err(io(format!("write {}", out.display())))?;
    Ok(out.to_path_buf())
}

fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>, ImageError> {
    crate::elf::shared_libs(bin).map_err(|e| ImageError::Io { step: format!("{} {}", e.step, e.path.display()), err: e.err })
}

/// What goes into an initramfs.
#[derive(Debug, Clone)]
pub struct InitramfsPlan {
    /// Init script text (`/init`).
    pub init: String,
    /// Static busybox (`/bin/busybox`).
    pub busybox: PathBuf,
    /// util-linux `chrt` (`/bin/chrt`), with its libraries.
    pub chrt: Option<PathBuf>,
    /// The worker (`/bin/worker`); `None` for the detection probe.
    pub worker: Option<PathBuf>,
    /// Modules directory and file names in load order.
    pub modules: Option<(PathBuf, Vec<String>)>,
}

/// The busybox applets linked under `/bin`.
pub const APPLETS: &[&str] = &[
    "sh", "mount", "mkdir", "cat", "cut", "awk", "grep", "insmod", "ip", "taskset", "poweroff", "sleep", "usleep", "kill",
    "sync", "ls", "echo",
];

/// Builds the entry list of an initramfs (reads the files named in `plan`).
pub fn initramfs_entries(plan: &InitramfsPlan) -> Result<Vec<Entry>, ImageError> {
    let read = |p: &Path| fs::read(p).map_err(io(format!("read {}", p.display())));
    let mut dirs: BTreeSet<String> = ["bin", "dev", "etc", "etc/cranlab", "lib", "lib/modules", "proc", "run", "sys", "tmp"]
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut files = vec![
        Entry::CharDev { path: "dev/console".into(), perm: 0o600, major: 5, minor: 1 },
        Entry::File { path: "init".into(), perm: 0o755, data: plan.init.as_bytes().to_vec() },
        Entry::File { path: "bin/busybox".into(), perm: 0o755, data: read(&plan.busybox)? },
    ];
    for a in APPLETS {
        files.push(Entry::Symlink { path: format!("bin/{a}"), target: "busybox".into() });
    }
    let mut libs = BTreeSet::new();
    if let Some(chrt) = &plan.chrt {
        files.push(Entry::File { path: "bin/chrt".into(), perm: 0o755, data: read(chrt)? });
        libs.extend(shared_libs(chrt)?);
    }
    if let Some(w) = &plan.worker {
        files.push(Entry::File { path: "bin/worker".into(), perm: 0o755, data: read(w)? });
        libs.extend(shared_libs(w)?);
    }
    for lib in libs {
        let rel = lib.to_string_lossy().trim_start_matches('/').to_string();
        let mut d = Path::new(&rel).parent();
        while let Some(p) = d.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_string_lossy().into_owned());
            d = p.parent();
        }
        // Resolve symlinks (libc.so.6 → libc-2.36.so on older layouts).
        let real = fs::canonicalize(&lib).map_err(io(format!("resolve {}", lib.display())))?;
        files.push(Entry::File { path: rel, perm: 0o755, data: read(&real)? });
    }
    if let Some((mdir, names)) = &plan.modules {
        for n in names {
            files.push(Entry::File { path: format!("lib/modules/{n}"), perm: 0o644, data: read(&mdir.join(n))? });
        }
        let mut list = names.join("\n");
        list.push('\n');
        files.push(Entry::File { path: "etc/cranlab/modules".into(), perm: 0o644, data: list.into_bytes() });
    }
    let mut out: Vec<Entry> = dirs.into_iter().map(|path| Entry::Dir { path, perm: 0o755 }).collect();
    out.extend(files);
    Ok(out)
}

/// Where to find the host tools copied into the initramfs.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// Cache directory (kernel and initramfs images).
    pub cache_dir: PathBuf,
    /// Guest kernel flavour.
    pub flavour: KernelFlavour,
    /// Static busybox on the host (`busybox-static`: `/bin/busybox`).
    pub busybox: PathBuf,
    /// util-linux `chrt` on the host.
    pub chrt: PathBuf,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            flavour: KernelFlavour::Standard,
            busybox: PathBuf::from("/bin/busybox"),
            chrt: PathBuf::from("/usr/bin/chrt"),
        }
    }
}

/// A bootable guest: kernel plus initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestImage {
    /// The kernel.
    pub kernel: GuestKernel,
    /// The initramfs (cpio newc, uncompressed).
    pub initramfs: PathBuf,
    /// Content hash of the initramfs inputs (its file name).
    pub key: String,
}

/// Builds (or reuses from the cache) the guest image for `worker` (`None`:
/// the probe image used by detection, without a worker).
pub fn build_guest_image(opts: &ImageOptions, worker: Option<&Path>) -> Result<GuestImage, ImageError> {
    check_busybox_static(&opts.busybox)?;
    let kernel = fetch_kernel(&opts.cache_dir, opts.flavour)?;
    let plan = InitramfsPlan {
        init: GUEST_INIT.to_string(),
        busybox: opts.busybox.clone(),
        chrt: Some(opts.chrt.clone()),
        worker: worker.map(Path::to_path_buf),
        modules: Some((kernel.modules_dir.clone(), kernel.modules.clone())),
    };
    let entries = initramfs_entries(&plan)?;
    let mut h = Sha256::new();
    h.update(kernel.package.as_bytes());
    h.update(kernel.version.as_bytes());
    for e in &entries {
        h.update(e.path().as_bytes());
        h.update([0]);
        match e {
            Entry::File { data, perm, .. } => {
                h.update(perm.to_le_bytes());
                h.update((data.len() as u64).to_le_bytes());
                h.update(data);
            }
            Entry::Symlink { target, .. } => h.update(target.as_bytes()),
            Entry::Dir { perm, .. } => h.update(perm.to_le_bytes()),
            Entry::CharDev { major, minor, .. } => {
                h.update(major.to_le_bytes());
                h.update(minor.to_le_bytes())
            }
        }
    }
    let key: String = h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    let dir = opts.cache_dir.join("initramfs");
    fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    let path = dir.join(format!("{key}.cpio"));
    if !path.exists() {
        // Unique per call: guests launched in parallel build the same image
        // at once; each writes its own temp file and the rename is atomic.
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{key}.{}.{n}.tmp", std::process::id()));
        let res = fs::write(&tmp, cpio::write_newc(&entries))
            .map_err(io(format!("write {}", tmp.display())))
            .and_then(|()| fs::rename(&tmp, &path).map_err(io(format!("rename {} to {}", tmp.display(), path.display()))));
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res?;
        prune_initramfs_cache(&dir, KEEP_INITRAMFS);
    } else if let Ok(f) = fs::File::options().append(true).open(&path) {
        // Mark it recently used for the pruning.
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    Ok(GuestImage { kernel, initramfs: path, key })
}

/// How many initramfs images the cache keeps (most recently used first).
pub const KEEP_INITRAMFS: usize = 8;

/// Removes all but the `keep` most recently used `*.cpio` in `dir`.
pub fn prune_initramfs_cache(dir: &Path, keep: usize) -> Vec<PathBuf> {
    let mut imgs: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let p = e.path();
                (p.extension()? == "cpio").then_some(())?;
                Some((e.metadata().ok()?.modified().ok()?, p))
            })
            .collect()
        })
        .unwrap_or_default();
    imgs.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    let mut removed = Vec::new();
    for (_, p) in imgs.into_iter().skip(keep) {
        if fs::remove_file(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}

fn check_busybox_static(bb: &Path) -> Result<(), ImageError> {
    if !bb.exists() {
        return Err(ImageError::Bad(format!("{} missing (apt-get install busybox-static)", bb.display())));
    }
    if !shared_libs(bb)?.is_empty() {
        return Err(ImageError::Bad(format!("{} is dynamically linked (apt-get install busybox-static)", bb.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/char/virtio_console.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
";

    fn names(v: &[String]) -> Vec<String> {
        v.iter().map(|p| module_name(p)).collect()
    }

    #[test]
    fn load_order_puts_dependencies_first_once() {
        let o = module_load_order(DEP, &["virtio_mmio", "virtio-net", "virtio_console"]).unwrap();
        assert_eq!(
            names(&o),
            ["virtio_ring", "virtio", "virtio_mmio", "failover", "net_failover", "virtio_net", "virtio_console"]
        );
        assert!(o[6].ends_with(".ko.xz"));
        let e = module_load_order(DEP, &["e1000"]).unwrap_err();
        assert!(e.to_string().contains("no module e1000"), "{e}");
    }

    #[test]
    fn versioned_package_is_found_in_apt_cache_output() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(parse_versioned_package(out).as_deref(), Some("linux-image-6.1.0-57-amd64"));
        let rt = "linux-image-rt-amd64\n  Depends: linux-image-6.1.0-57-rt-amd64\n  Recommends: x\n";
        assert_eq!(parse_versioned_package(rt).as_deref(), Some("linux-image-6.1.0-57-rt-amd64"));
        assert_eq!(parse_versioned_package("linux-image-amd64\n"), None);
    }

    #[test]
    fn kernel_features_come_from_config() {
        let f = KernelFeatures::from_config("CONFIG_NO_HZ_FULL=y\n# CONFIG_RCU_NOCB_CPU is not set\nCONFIG_PVH=y\n");
        assert_eq!(f, KernelFeatures { no_hz_full: true, rcu_nocb: false, preempt_rt: false, pvh: true });
    }

    #[test]
    fn initramfs_cache_keeps_the_most_recent() {
        let d = std::env::temp_dir().join(format!("cranlab-kvm-prune-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
        for i in 0..5u64 {
            let p = d.join(format!("{i}.cpio"));
            fs::write(&p, b"x").unwrap();
            fs::File::options().append(true).open(&p).unwrap().set_modified(t0 + std::time::Duration::from_secs(i)).unwrap();
        }
        fs::write(d.join("kernel.json"), b"{}").unwrap();
        let mut removed = prune_initramfs_cache(&d, 3);
        removed.sort();
        assert_eq!(removed, [d.join("0.cpio"), d.join("1.cpio")]);
        assert!(d.join("4.cpio").exists() && d.join("kernel.json").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn xz_payload_is_located() {
        let mut b = vec![0u8; 100];
        b.extend_from_slice(b"\xfd7zXZ\x00rest");
        assert_eq!(find_xz_payload(&b), Some(100));
        assert_eq!(find_xz_payload(&[0; 10]), None);
    }

    #[test]
    fn initramfs_layout_lists_init_tools_worker_and_modules() {
        let d = std::env::temp_dir().join(format!("cranlab-kvm-test-{}", std::process::id()));
        fs::create_dir_all(d.join("mods")).unwrap();
        // Stand-ins: a script is "static" for ldd; the real files are covered by the e2e test.
        for f in ["busybox", "worker"] {
            fs::write(d.join(f), b"#!/bin/sh\n").unwrap();
        }
        fs::write(d.join("mods/virtio.ko"), b"m1").unwrap();
        fs::write(d.join("mods/virtio_net.ko"), b"m2").unwrap();
        let plan = InitramfsPlan {
            init: GUEST_INIT.into(),
            busybox: d.join("busybox"),
            chrt: Some("/usr/bin/chrt".into()),
            worker: Some(d.join("worker")),
            modules: Some((d.join("mods"), vec!["virtio.ko".into(), "virtio_net.ko".into()])),
        };
        let a = cpio::write_newc(&initramfs_entries(&plan).unwrap());
        let l = cpio::list_newc(&a).unwrap();
        let find = |p: &str| l.iter().find(|e| e.path == p).unwrap_or_else(|| panic!("{p} missing from initramfs"));
        assert_eq!(find("init").mode, 0o100755);
        assert_eq!(find("dev/console").rdev, (5, 1));
        assert_eq!(find("bin/worker").mode, 0o100755);
        assert_eq!(find("bin/sh").mode & 0o170000, 0o120000);
        find("bin/chrt");
        find("lib/modules/virtio_net.ko");
        // chrt is dynamic: its libc and loader come along.
        assert!(l.iter().any(|e| e.path.ends_with("libc.so.6")));
        assert!(l.iter().any(|e| e.path.contains("ld-linux")));
        // Directories precede their contents.
        let pos = |p: &str| l.iter().position(|e| e.path == p).unwrap();
        assert!(pos("bin") < pos("bin/busybox"));
        assert!(pos("lib/modules") < pos("lib/modules/virtio.ko"));
        let order = String::from_utf8(
            initramfs_entries(&plan)
                .unwrap()
                .into_iter()
                .find_map(|e| match e {
                    Entry::File { path, data, .. } if path == "etc/cranlab/modules" => Some(data),
                    _ => None,
                })
                .unwrap(),
        )
        .unwrap();
        assert_eq!(order, "virtio.ko\nvirtio_net.ko\n");
        fs::remove_dir_all(&d).unwrap();
    }
}
