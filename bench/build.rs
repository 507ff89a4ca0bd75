//! Embeds `git describe --always --dirty` as `CRANLAB_GIT_REVISION` (an
//! already set `CRANLAB_GIT_REVISION` wins: builds from an exported tree).

fn main() {
    println!("cargo:rerun-if-env-changed=CRANLAB_GIT_REVISION");
    if let Ok(rev) = std::env::var("CRANLAB_GIT_REVISION") {
        if !rev.trim().is_empty() {
            println!("cargo:rustc-env=CRANLAB_GIT_REVISION={}", rev.trim());
            return;
        }
    }
    let rev = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("unknown (not a git checkout; bench {})", env!("CARGO_PKG_VERSION")));
    println!("cargo:rustc-env=CRANLAB_GIT_REVISION={rev}");
    // Re-run when HEAD or the index moves.
    for p in ["../.git/HEAD", "../.git/index"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
