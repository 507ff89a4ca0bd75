//! Fake filesystem roots shared by the fake-root tests (cgroups, shield, host check).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// A temp dir removed on drop.
pub struct Tmp(pub PathBuf);

impl Tmp {
    /// A fresh, empty `cranlab-<kind>-<tag>-<pid>` directory under the temp dir.
    pub fn new(kind: &str, tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("cranlab-{kind}-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Writes `v` to `p`, creating its parents.
pub fn put(p: &Path, v: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, v).unwrap();
}

/// The trimmed content of `p`; panics naming the file when it is missing.
pub fn get(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string()
}
