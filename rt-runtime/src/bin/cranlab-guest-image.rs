//! `cranlab-guest-image`: builds (or reuses from its cache) the kvm
//! deployment's guest image and prints where the kernel and initramfs are.
//!
//! Usage: `cranlab-guest-image CACHE_DIR [--worker PATH] [--rt] [--probe]`
//! (used by `scripts/build-guest.sh`).

use std::path::PathBuf;
use std::process::ExitCode;

use rt_runtime::kvm::{build_guest_image, ImageOptions, KernelFlavour};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mut cache: Option<PathBuf> = None;
    let mut worker: Option<PathBuf> = None;
    let mut flavour = KernelFlavour::Standard;
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--worker") => worker = args.next().map(PathBuf::from),
            Some("--rt") => flavour = KernelFlavour::Rt,
            Some("--probe") => worker = None,
            Some("-h" | "--help") => {
                println!("usage: cranlab-guest-image CACHE_DIR [--worker PATH] [--rt]");
                return ExitCode::SUCCESS;
            }
            Some(s) if s.starts_with('-') => {
                eprintln!("cranlab-guest-image: unknown option {s}");
                return ExitCode::from(2);
            }
            _ if cache.is_none() => cache = Some(PathBuf::from(a)),
            _ => {
                eprintln!("cranlab-guest-image: unexpected argument {a:?}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(cache_dir) = cache else {
        eprintln!("usage: cranlab-guest-image CACHE_DIR [--worker PATH] [--rt]");
        return ExitCode::from(2);
    };
    if let Some(w) = &worker {
        if !w.is_file() {
            eprintln!("cranlab-guest-image: worker {} is not a file", w.display());
            return ExitCode::from(2);
        }
    }
    let opts = ImageOptions { cache_dir, flavour, ..ImageOptions::default() };
    match build_guest_image(&opts, worker.as_deref()) {
        Ok(img) => {
            println!("kernel={}", img.kernel.kernel.display());
            println!("initramfs={}", img.initramfs.display());
            println!("package={} {}", img.kernel.package, img.kernel.version);
            println!("release={}", img.kernel.release);
            println!("uncompressed={}", img.kernel.uncompressed);
            println!("modules={}", img.kernel.modules.join(","));
            println!(
                "features=no_hz_full:{} rcu_nocb:{} preempt_rt:{}",
                img.kernel.features.no_hz_full, img.kernel.features.rcu_nocb, img.kernel.features.preempt_rt
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cranlab-guest-image: {e}");
            ExitCode::FAILURE
        }
    }
}
