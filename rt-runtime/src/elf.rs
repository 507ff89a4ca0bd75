//! The shared libraries an ELF executable needs, for copying it into a
//! container rootfs ([`crate::container::bundle`]) or a guest initramfs
//! ([`crate::kvm::image`]).

use std::path::{Path, PathBuf};

/// A step of [`shared_libs`] failed.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {err}", path.display())]
pub struct LibsError {
    /// What was being done (`read`, `run ldd on`).
    pub step: &'static str,
    /// The executable.
    pub path: PathBuf,
    /// The cause (printed above, so not a `source`).
    pub err: std::io::Error,
}

/// Whether `data` is an ELF file with a `PT_INTERP` program header, i.e. a
/// dynamically linked executable (static and static-pie ones have none).
pub fn is_dynamic(data: &[u8]) -> bool {
    if data.len() <= 64 || &data[..4] != b"\x7fELF" {
        return false;
    }
    let phoff = u64::from_le_bytes(data[32..40].try_into().unwrap_or_default()) as usize;
    let phentsize = u16::from_le_bytes([data[54], data[55]]) as usize;
    let phnum = u16::from_le_bytes([data[56], data[57]]) as usize;
    (0..phnum).any(|i| {
        let o = phoff.saturating_add(i.saturating_mul(phentsize));
        data.get(o..o.saturating_add(4)).is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap_or_default()) == 3)
    })
}

/// The absolute paths of the shared libraries (and the dynamic loader) that
/// `bin` needs, from `ldd`; empty for a static executable.
pub fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>, LibsError> {
    let err = |step| move |err| LibsError { step, path: bin.to_path_buf(), err };
    let data = std::fs::read(bin).map_err(err("read"))?;
    if !is_dynamic(&data) {
        return Ok(Vec::new());
    }
    let out = std::process::Command::new("ldd").arg(bin).output().map_err(err("run ldd on"))?;
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// Parses `ldd` output into library paths (lines without an absolute path,
/// such as `linux-vdso.so.1`, are skipped).
pub fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let p = match l.split_once("=>") {
                Some((_, r)) => r.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            p.starts_with('/').then(|| PathBuf::from(p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let t = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n";
        assert_eq!(
            parse_ldd(t),
            [PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
    }

    #[test]
    fn static_and_non_elf_have_no_libs() {
        assert!(!is_dynamic(b"#!/bin/sh\necho hi\n"));
        assert!(!is_dynamic(&[0u8; 10]));
        let d = std::env::temp_dir().join(format!("cranlab-elf-test-{}", std::process::id()));
        std::fs::write(&d, "#!/bin/sh\n").unwrap();
        let r = shared_libs(&d);
        std::fs::remove_file(&d).unwrap();
        assert!(r.unwrap().is_empty());
    }

    #[test]
    fn dynamic_binary_lists_its_loader() {
        let sh = Path::new("/bin/sh");
        let data = std::fs::read(sh).unwrap();
        if !is_dynamic(&data) {
            eprintln!("skip: /bin/sh is static here");
            return;
        }
        let libs = shared_libs(sh).unwrap();
        assert!(libs.iter().any(|p| p.to_string_lossy().contains("ld-linux")), "{libs:?}");
    }

    #[test]
    fn missing_file_names_the_step_once() {
        let e = shared_libs(Path::new("/nonexistent/cranlab-bin")).unwrap_err();
        assert_eq!(e.step, "read");
        assert!(e.to_string().starts_with("read /nonexistent/cranlab-bin: "), "{e}");
        assert!(std::error::Error::source(&e).is_none());
    }
}
