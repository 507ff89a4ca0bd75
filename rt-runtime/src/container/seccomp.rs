//! `linux.seccomp` → a classic-BPF program, compiled by `seccompiler` (the
//! Firecracker filter compiler, pure Rust).
//!
//! seccompiler filters have one action on match and one on mismatch, so the
//! OCI profile must reduce to that: rules whose action equals
//! `defaultAction` are no-ops and dropped; the remaining rules must share one
//! action, or the bundle is refused naming the field. The filter checks the
//! architecture (x86_64 only; other ABIs are killed), which is stricter than
//! a profile listing `SCMP_ARCH_X86`/`SCMP_ARCH_X32` too.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};
use serde_json::{json, Value};

/// A compiled filter and the `seccomp(2)` flags to install it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    /// The BPF program.
    pub program: Vec<seccompiler::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*`.
    pub flags: u32,
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<Value, String> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => json!("allow"),
        LinuxSeccompAction::ScmpActErrno => json!({ "errno": errno.unwrap_or(libc::EPERM as u32) }),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => json!("kill_thread"),
        LinuxSeccompAction::ScmpActKillProcess => json!("kill_process"),
        LinuxSeccompAction::ScmpActTrap => json!("trap"),
        LinuxSeccompAction::ScmpActLog => json!("log"),
        LinuxSeccompAction::ScmpActTrace => json!({ "trace": errno.unwrap_or(0) }),
        LinuxSeccompAction::ScmpActNotify => {
            return Err(format!("{field}: SCMP_ACT_NOTIFY is not supported by rt-runtime (no seccomp agent)"))
        }
    })
}

/// Compiles an OCI seccomp profile for x86_64.
pub fn compile(s: &LinuxSeccomp) -> Result<Compiled, String> {
    if s.listener_path().is_some() {
        return Err("linux.seccomp.listenerPath: seccomp notification is not supported by rt-runtime".into());
    }
    if let Some(archs) = s.architectures() {
        use oci_spec::runtime::Arch;
        if !archs.is_empty() && !archs.iter().any(|a| matches!(a, Arch::ScmpArchX86_64 | Arch::ScmpArchNative)) {
            return Err("linux.seccomp.architectures: SCMP_ARCH_X86_64 is not listed; rt-runtime builds x86_64 filters only".into());
        }
    }
    let mut flags = 0u32;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG as u32,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC as u32,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32,
        };
    }
    let default = action(s.default_action(), s.default_errno_ret(), "linux.seccomp.defaultAction")?;
    let mut match_action: Option<Value> = None;
    // syscall name -> list of condition sets (empty set = unconditional)
    let mut rules: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let act = action(sc.action(), sc.errno_ret(), &field)?;
        if act == default {
            continue;
        }
        match &match_action {
            None => match_action = Some(act.clone()),
            Some(m) if *m == act => {}
            Some(m) => {
                return Err(format!(
                    "{field}.action: a second non-default action ({act}) besides {m} is not supported by rt-runtime's seccomp compiler"
                ))
            }
        }
        let mut conds = Vec::new();
        for (j, a) in sc.args().iter().flatten().enumerate() {
            let op = match a.op() {
                LinuxSeccompOperator::ScmpCmpNe => json!("ne"),
                LinuxSeccompOperator::ScmpCmpLt => json!("lt"),
                LinuxSeccompOperator::ScmpCmpLe => json!("le"),
                LinuxSeccompOperator::ScmpCmpEq => json!("eq"),
                LinuxSeccompOperator::ScmpCmpGe => json!("ge"),
                LinuxSeccompOperator::ScmpCmpGt => json!("gt"),
                LinuxSeccompOperator::ScmpCmpMaskedEq => json!({ "masked_eq": a.value() }),
            };
            let val = if a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq { a.value_two().unwrap_or(0) } else { a.value() };
            if a.index() > 5 {
                return Err(format!("{field}.args[{j}].index: {} is not a syscall argument (0..5)", a.index()));
            }
            conds.push(json!({ "index": a.index(), "type": "qword", "op": op, "val": val }));
        }
        for name in sc.names() {
            rules.push((name.clone(), conds.clone()));
        }
    }
    let Some(match_action) = match_action else {
        // Nothing differs from the default: a filter that only applies the default.
        return compile_json(json!({ "main": { "mismatch_action": default, "filter_action": if default == json!("allow") { json!("log") } else { json!("allow") }, "filter": [] } }), flags);
    };
    // A syscall matched unconditionally anywhere must not get conditional rules too.
    let unconditional: std::collections::HashSet<String> =
        rules.iter().filter(|(_, c)| c.is_empty()).map(|(n, _)| n.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    let mut filter = Vec::new();
    for (name, conds) in rules {
        if unconditional.contains(&name) {
            if seen.insert(name.clone()) {
                filter.push(json!({ "syscall": name }));
            }
        } else {
            filter.push(json!({ "syscall": name, "args": conds }));
        }
    }
    compile_json(json!({ "main": { "mismatch_action": default, "filter_action": match_action, "filter": filter } }), flags)
}

fn compile_json(v: Value, flags: u32) -> Result<Compiled, String> {
    let text = v.to_string();
    let mut map = seccompiler::compile_from_json(text.as_bytes(), seccompiler::TargetArch::x86_64)
        .map_err(|e| format!("linux.seccomp: {e}"))?;
    let program = map.remove("main").ok_or("linux.seccomp: compiler returned no filter")?;
    Ok(Compiled { program, flags })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn deny_list_compiles() {
        let p = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{ "names": ["mount", "umount2", "kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 }]
        }));
        let c = compile(&p).unwrap();
        assert!(c.program.len() > 5);
        assert_eq!(c.flags, 0);
    }

    #[test]
    fn two_actions_are_refused_naming_the_field() {
        let p = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                { "names": ["mount"], "action": "SCMP_ACT_ERRNO" },
                { "names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS" }
            ]
        }));
        let e = compile(&p).unwrap_err();
        assert!(e.starts_with("linux.seccomp.syscalls[1].action"), "{e}");
    }

    #[test]
    fn unknown_syscall_is_refused() {
        let p = profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{ "names": ["read", "no_such_call"], "action": "SCMP_ACT_ALLOW" }]
        }));
        let e = compile(&p).unwrap_err();
        assert!(e.contains("no_such_call"), "{e}");
    }

    #[test]
    fn notify_is_refused() {
        let p = profile(json!({ "defaultAction": "SCMP_ACT_NOTIFY" }));
        assert!(compile(&p).unwrap_err().contains("SCMP_ACT_NOTIFY"));
    }
}
