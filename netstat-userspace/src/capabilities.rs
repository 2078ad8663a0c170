//! The capabilities enetstat runs with, and the one-line error that names
//! the one missing (README, "Capabilities").

use crate::fail;

/// A capability, by its number in linux/capability.h.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap(u32, &'static str);

pub const DAC_READ_SEARCH: Cap = Cap(2, "CAP_DAC_READ_SEARCH");
pub const SYS_PTRACE: Cap = Cap(19, "CAP_SYS_PTRACE");
pub const SYS_ADMIN: Cap = Cap(21, "CAP_SYS_ADMIN");
pub const SYS_RESOURCE: Cap = Cap(24, "CAP_SYS_RESOURCE");
pub const PERFMON: Cap = Cap(38, "CAP_PERFMON");
pub const BPF: Cap = Cap(39, "CAP_BPF");

impl Cap {
    pub fn name(self) -> &'static str {
        self.1
    }
}

/// The effective set, from /proc/self/status (empty if unreadable).
pub fn effective() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    parse_effective(&status)
}

fn parse_effective(status: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0)
}

pub fn has(set: u64, cap: Cap) -> bool {
    set & (1 << cap.0) != 0
}

/// The capabilities of `needed` missing from `set`, where `CAP_SYS_ADMIN`
/// stands for `CAP_BPF` and `CAP_PERFMON` (as it did before Linux 5.8).
pub fn missing(set: u64, needed: &[Cap]) -> Vec<Cap> {
    let admin = has(set, SYS_ADMIN);
    needed
        .iter()
        .copied()
        .filter(|&cap| !has(set, cap) && !(admin && (cap == BPF || cap == PERFMON)))
        .collect()
}

/// Ok if this process holds `needed`; else the refusal of `what`, naming
/// the ones it lacks.
pub fn require(what: &str, needed: &[Cap]) -> anyhow::Result<()> {
    let missing = missing(effective(), needed);
    match missing.is_empty() {
        true => Ok(()),
        false => Err(refuse(what, &missing)),
    }
}

/// The usage error (exit 2) for `what`, which needs the `missing`
/// capabilities.
pub fn refuse(what: &str, missing: &[Cap]) -> anyhow::Error {
    let names: Vec<&str> = missing.iter().map(|c| c.name()).collect();
    let them = if names.len() == 1 { "it" } else { "them" };
    fail::no_ebpf(format!(
        "{what} needs {}: run enetstat as root, or grant {them} (README, Capabilities)",
        names.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_capabilities_are_named_and_sys_admin_covers_bpf_and_perfmon() {
        let set = parse_effective("Name:\tx\nCapEff:\t0000008000000000\n");
        assert!(has(set, BPF));
        assert_eq!(missing(set, &[BPF, PERFMON]), [PERFMON]);
        assert_eq!(missing(0, &[BPF, SYS_RESOURCE]), [BPF, SYS_RESOURCE]);
        let admin = 1 << SYS_ADMIN.0;
        assert_eq!(
            missing(admin, &[BPF, PERFMON, SYS_RESOURCE]),
            [SYS_RESOURCE]
        );
        assert_eq!(parse_effective("CapEff:\tzz\n"), 0);
    }
}
