//! Capability names and numbers (`CAP_CHOWN` = 0 … `CAP_CHECKPOINT_RESTORE` = 40).

/// Capability names indexed by number, as in `linux/capability.h`.
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Number of a capability by name (`CAP_NET_RAW` → 13).
pub fn number(name: &str) -> Option<u32> {
    NAMES.iter().position(|n| *n == name).map(|p| p as u32)
}

/// Names of the capabilities set in a mask, in number order.
pub fn names(mask: u64) -> Vec<&'static str> {
    (0..NAMES.len()).filter(|&i| mask & (1 << i) != 0).map(|i| NAMES[i]).collect()
}

/// Mask of a list of names; the first unknown name is returned as the error.
pub fn mask<'a>(list: impl IntoIterator<Item = &'a str>) -> Result<u64, String> {
    let mut m = 0u64;
    for n in list {
        m |= 1 << number(n).ok_or_else(|| n.to_string())?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel_header() {
        assert_eq!(number("CAP_NET_RAW"), Some(13));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CAP_BPF"), Some(39));
        assert_eq!(number("CAP_NOPE"), None);
        assert_eq!(mask(["CAP_NET_RAW", "CAP_IPC_LOCK"]).unwrap(), (1 << 13) | (1 << 14));
        assert_eq!(names((1 << 13) | (1 << 14)), vec!["CAP_NET_RAW", "CAP_IPC_LOCK"]);
    }
}
