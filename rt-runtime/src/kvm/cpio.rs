//! A minimal cpio "newc" (SVR4, `070701`) writer and reader for the guest's
//! initramfs: directories, regular files, symlinks and device nodes, owned by
//! root, with a fixed mtime so the same inputs give the same bytes.

use std::fmt::Write as _;

/// One entry of an initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory.
    Dir {
        /// Path without a leading `/` (e.g. `bin`).
        path: String,
        /// Permission bits.
        perm: u32,
    },
    /// A regular file.
    File {
        /// Path without a leading `/`.
        path: String,
        /// Permission bits.
        perm: u32,
        /// Contents.
        data: Vec<u8>,
    },
    /// A symbolic link.
    Symlink {
        /// Path without a leading `/`.
        path: String,
        /// Where it points.
        target: String,
    },
    /// A character device node.
    CharDev {
        /// Path without a leading `/`.
        path: String,
        /// Permission bits.
        perm: u32,
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

impl Entry {
    /// The entry's path.
    pub fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } | Entry::CharDev { path, .. } => path,
        }
    }
}

/// An entry as read back from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Path as stored.
    pub path: String,
    /// Full mode (type and permission bits).
    pub mode: u32,
    /// Size of the data (file contents or symlink target).
    pub size: usize,
    /// Device numbers (rdev major, minor).
    pub rdev: (u32, u32),
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, rdev: (u32, u32), name: &str) {
    let mut h = String::with_capacity(110);
    h.push_str("070701");
    let nlink = if mode & 0o170000 == S_IFDIR { 2 } else { 1 };
    for v in [ino, mode, 0, 0, nlink, 0, size as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0] {
        let _ = write!(h, "{v:08x}");
    }
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// Writes `entries` as a newc archive, followed by the trailer.
pub fn write_newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match e {
            Entry::Dir { path, perm } => header(&mut out, ino, S_IFDIR | perm, 0, (0, 0), path),
            Entry::File { path, perm, data } => {
                header(&mut out, ino, S_IFREG | perm, data.len(), (0, 0), path);
                out.extend_from_slice(data);
                pad4(&mut out);
            }
            Entry::Symlink { path, target } => {
                header(&mut out, ino, S_IFLNK | 0o777, target.len(), (0, 0), path);
                out.extend_from_slice(target.as_bytes());
                pad4(&mut out);
            }
            Entry::CharDev { path, perm, major, minor } => {
                header(&mut out, ino, S_IFCHR | perm, 0, (*major, *minor), path)
            }
        }
    }
    header(&mut out, 0, 0, 0, (0, 0), "TRAILER!!!");
    out
}

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
#[error("read cpio newc archive at byte {offset}: {what}")]
pub struct CpioError {
    /// Where.
    pub offset: usize,
    /// What is wrong.
    pub what: String,
}

/// Lists the entries of a newc archive (up to its trailer).
pub fn list_newc(data: &[u8]) -> Result<Vec<Listed>, CpioError> {
    let mut out = Vec::new();
    let mut off = 0usize;
    let err = |offset: usize, what: &str| CpioError { offset, what: what.to_string() };
    loop {
        let h = data.get(off..off + 110).ok_or_else(|| err(off, "truncated header"))?;
        if &h[..6] != b"070701" {
            return Err(err(off, "bad magic (not newc)"));
        }
        let field = |i: usize| -> Result<u32, CpioError> {
            let s = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).map_err(|_| err(off, "non-ascii header"))?;
            u32::from_str_radix(s, 16).map_err(|_| err(off, "non-hex header field"))
        };
        let mode = field(1)?;
        let size = field(6)? as usize;
        let rdev = (field(9)?, field(10)?);
        let namesize = field(11)? as usize;
        let name_start = off + 110;
        let name = data.get(name_start..name_start + namesize.saturating_sub(1)).ok_or_else(|| err(off, "truncated name"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let mut p = name_start + namesize;
        p = p.div_ceil(4) * 4;
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        if data.len() < p + size {
            return Err(err(off, "truncated data"));
        }
        p += size;
        p = p.div_ceil(4) * 4;
        out.push(Listed { path: name, mode, size, rdev });
        off = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_lists_every_entry_with_its_type() {
        let entries = vec![
            Entry::Dir { path: "bin".into(), perm: 0o755 },
            Entry::File { path: "bin/x".into(), perm: 0o755, data: b"hello".to_vec() },
            Entry::Symlink { path: "bin/sh".into(), target: "busybox".into() },
            Entry::CharDev { path: "dev/console".into(), perm: 0o600, major: 5, minor: 1 },
        ];
        let a = write_newc(&entries);
        assert_eq!(a.len() % 4, 0);
        let l = list_newc(&a).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[0].path, "bin");
        assert_eq!(l[0].mode, 0o040755);
        assert_eq!((l[1].path.as_str(), l[1].mode, l[1].size), ("bin/x", 0o100755, 5));
        assert_eq!((l[2].mode & 0o170000, l[2].size), (0o120000, 7));
        assert_eq!((l[3].mode, l[3].rdev), (0o020600, (5, 1)));
    }

    #[test]
    fn garbage_is_rejected_with_offset() {
        let e = list_newc(&[b'x'; 120]).unwrap_err();
        assert!(e.to_string().contains("bad magic"), "{e}");
        let mut a = write_newc(&[Entry::File { path: "f".into(), perm: 0o644, data: vec![1; 100] }]);
        a.truncate(150);
        assert!(list_newc(&a).is_err());
    }
}
