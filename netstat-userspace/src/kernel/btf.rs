//! What the kernel programs need to know of the running kernel, from its BTF:
//! struct offsets (a socket's network namespace, endpoints and byte totals, a
//! packet's addresses) and the raw arguments of each tracepoint. Reading them
//! here instead of compiling them in keeps the programs working across
//! kernel builds, and refuses a kernel whose tracepoints changed.

use anyhow::Result;
use btf_rs::{Btf, Type};
use netstat_common::{KernelOffsets, NO_FIELD};

use crate::fail;

const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn load() -> Result<Btf> {
    // Parsed from memory: btf-rs reading the file seeks once per type
    // (over 100,000 lseek calls, seconds of start-up under load).
    std::fs::read(VMLINUX_BTF)
        .map_err(btf_rs::Error::from)
        .and_then(|bytes| Btf::from_bytes(&bytes))
        .map_err(|e| {
            fail::no_ebpf(format!(
                "cannot read kernel BTF from {VMLINUX_BTF} ({e}); enetstat needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
            ))
        })
}

/// A kernel facility, as the kernel's BTF shows it, and the Linux release
/// that brought it.
struct Facility {
    what: &'static str,
    since: &'static str,
    /// An enumerator (enum, name) or a struct member path that only kernels
    /// with the facility have.
    enumerator: Option<(&'static str, &'static str)>,
    member: &'static [&'static str],
}

impl Facility {
    fn present(&self, btf: &Btf) -> bool {
        match self.enumerator {
            Some((ty, name)) => enum_value(btf, ty, name).is_some(),
            None => member(btf, self.member).is_some(),
        }
    }
}

/// What tracing cannot do without: a kernel lacking one is refused.
const REQUIRED: [Facility; 3] = [
    Facility {
        what: "BTF tracepoints (tp_btf)",
        since: "5.5",
        enumerator: Some(("bpf_attach_type", "BPF_TRACE_RAW_TP")),
        member: &[],
    },
    Facility {
        what: "the BPF ring buffer",
        since: "5.8",
        enumerator: Some(("bpf_map_type", "BPF_MAP_TYPE_RINGBUF")),
        member: &[],
    },
    Facility {
        what: "the bpf_skc_to_tcp_sock helper",
        since: "5.9",
        enumerator: Some(("bpf_func_id", "BPF_FUNC_skc_to_tcp_sock")),
        member: &[],
    },
];

/// Counts of program runs the kernel skipped (a loss counter only): where
/// missing, enetstat runs and says so once.
const SKIPPED_RUN_COUNTS: Facility = Facility {
    what: "counts of skipped BPF program runs (bpf_prog_info.recursion_misses)",
    since: "5.12",
    enumerator: None,
    member: &["bpf_prog_info", "recursion_misses"],
};

/// The oldest kernel enetstat is tested on (every `REQUIRED` facility is
/// in 5.9; 5.10 is the oldest long-term release with them).
pub const MINIMUM_KERNEL: &str = "5.10";

/// Refuses, in one line naming it, a kernel that lacks a required facility.
pub fn require_facilities(btf: &Btf) -> Result<()> {
    match REQUIRED.iter().find(|f| !f.present(btf)) {
        Some(f) => Err(fail::no_ebpf(format!(
            "this kernel lacks {} (Linux {} and later); enetstat needs Linux {MINIMUM_KERNEL} or later",
            f.what, f.since
        ))),
        None => Ok(()),
    }
}

/// Whether the kernel counts the runs it skipped; if not, the note that
/// says which count is missing.
pub fn skipped_runs_counted(btf: &Btf) -> Result<(), String> {
    let f = &SKIPPED_RUN_COUNTS;
    match f.present(btf) {
        true => Ok(()),
        false => Err(format!(
            "this kernel lacks {} (Linux {} and later): lost_skipped is unknown (null); such a kernel never skips a run, and a change it failed to report is still counted as a gap",
            f.what, f.since
        )),
    }
}

/// Whether the kernel charges BPF maps to RLIMIT_MEMLOCK: through 5.10 a
/// map's `struct bpf_map_memory` held the charge; 5.11 moved it to memory
/// cgroups and removed the type.
pub fn charges_memlock(btf: &Btf) -> bool {
    btf.resolve_types_by_name("bpf_map_memory")
        .is_ok_and(|types| types.iter().any(|t| matches!(t, Type::Struct(_))))
}

/// The kernel's reset reasons (`enum sk_rst_reason`, Linux 6.10+) by value,
/// named as BTF spells them, lower-cased without the `SK_RST_REASON_`
/// prefix (`no_socket`); None when the kernel has no such enum.
pub fn reset_reasons(btf: &Btf) -> Option<Vec<String>> {
    enum_names(btf, "sk_rst_reason", "SK_RST_REASON_")
}

/// The kernel's drop reasons (`enum skb_drop_reason`), named as
/// `reset_reasons` names its reasons (`netfilter_drop`).
pub fn drop_reasons(btf: &Btf) -> Option<Vec<String>> {
    enum_names(btf, "skb_drop_reason", "SKB_DROP_REASON_")
}

/// The members of `enum name` by value, without `prefix`, lower-cased.
fn enum_names(btf: &Btf, name: &str, prefix: &str) -> Option<Vec<String>> {
    let types = btf.resolve_types_by_name(name).ok()?;
    let Type::Enum(e) = types.into_iter().find(|t| matches!(t, Type::Enum(_)))? else {
        return None;
    };
    let mut names = Vec::new();
    for m in &e.members {
        let name = btf.resolve_name(m).ok()?;
        let value = m.val() as usize;
        // Subsystem reasons of skb_drop_reason live in the high bits.
        if value >= 1 << 16 {
            continue;
        }
        if value >= names.len() {
            names.resize(value + 1, String::new());
        }
        names[value] = name.trim_start_matches(prefix).to_ascii_lowercase();
    }
    Some(names)
}

pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets> {
    let at = |path: &[&str]| {
        offset_of(btf, path).ok_or_else(|| {
            fail::no_ebpf(format!(
                "kernel BTF has no {}; this kernel's struct layout is not supported",
                path.join(".")
            ))
        })
    };
    Ok(KernelOffsets {
        sock_net: at(&["sock", "__sk_common", "skc_net", "net"])?,
        skb_dev: at(&["sk_buff", "dev"])?,
        netdev_net: at(&["net_device", "nd_net", "net"])?,
        net_inum: at(&["net", "ns", "inum"])?,
        sock_state: at(&["sock", "__sk_common", "skc_state"])?,
        sock_family: at(&["sock", "__sk_common", "skc_family"])?,
        sock_dport: at(&["sock", "__sk_common", "skc_dport"])?,
        sock_daddr: at(&["sock", "__sk_common", "skc_daddr"])?,
        sock_v6_daddr: at(&["sock", "__sk_common", "skc_v6_daddr"])?,
        sock_v6_saddr: at(&["sock", "__sk_common", "skc_v6_rcv_saddr"])?,
        inet_sport: at(&["inet_sock", "inet_sport"])?,
        inet_saddr: at(&["inet_sock", "inet_saddr"])?,
        sock_num: at(&["sock", "__sk_common", "skc_num"])?,
        sock_rcv_saddr: at(&["sock", "__sk_common", "skc_rcv_saddr"])?,
        skb_head: at(&["sk_buff", "head"])?,
        skb_network_header: at(&["sk_buff", "network_header"])?,
        skb_transport_header: at(&["sk_buff", "transport_header"])?,
        tcp_bytes_acked: at(&["tcp_sock", "bytes_acked"])?,
        tcp_bytes_received: at(&["tcp_sock", "bytes_received"])?,
        tcp_srtt_us: at(&["tcp_sock", "srtt_us"])?,
        tcp_total_retrans: at(&["tcp_sock", "total_retrans"])?,
        net_port_range: packed_port_range(btf).unwrap_or(NO_FIELD),
        sock_flags: at(&["sock", "__sk_common", "skc_flags"])?,
        sock_err: at(&["sock", "sk_err"])?,
        sock_err_soft: at(&["sock", "sk_err_soft"])?,
        tcp_segs_out: at(&["tcp_sock", "segs_out"])?,
        sock_drops: at(&["sock", "sk_drops"])?,
        sock_done_bit: enum_value(btf, "sock_flags", "SOCK_DONE").ok_or_else(|| {
            fail::no_ebpf(
                "kernel BTF has no enum sock_flags SOCK_DONE; this kernel is not supported",
            )
        })?,
    })
}

/// The value of enumerator `name` of `enum ty` (None also for values
/// past u16, which no caller needs).
fn enum_value(btf: &Btf, ty: &str, name: &str) -> Option<u16> {
    let types = btf.resolve_types_by_name(ty).ok()?;
    types.iter().find_map(|t| match t {
        Type::Enum(e) => e
            .members
            .iter()
            .find(|m| btf.resolve_name(*m).is_ok_and(|n| n == name))
            .and_then(|m| u16::try_from(m.val()).ok()),
        _ => None,
    })
}

/// `net.ipv4.ip_local_ports.range` when it is one u32 (low | high << 16,
/// Linux 6.3 and later); older kernels keep two ints behind a seqlock.
fn packed_port_range(btf: &Btf) -> Option<u16> {
    let (bits, ty) = member(btf, &["net", "ipv4", "ip_local_ports", "range"])?;
    match ty {
        Type::Int(int) if int.size() == 4 => u16::try_from(bits / 8).ok(),
        _ => None,
    }
}

/// Whether tcp_send_reset fires for every reset the kernel sends (Linux
/// 6.10 and later), not for full sockets only: it became an event of its
/// own then, whose record type tells.
pub fn send_reset_covers_all_sockets(btf: &Btf) -> bool {
    btf.resolve_types_by_name("trace_event_raw_tcp_send_reset")
        .is_ok_and(|types| types.iter().any(|t| matches!(t, Type::Struct(_))))
}

/// The C types of a tracepoint's raw arguments (after the `void *` every
/// probe gets first), as `struct sock *` or `int`, qualifiers left out;
/// None when the kernel has no such tracepoint.
pub fn tracepoint_args(btf: &Btf, name: &str) -> Option<Vec<String>> {
    let typedef = btf
        .resolve_types_by_name(&format!("btf_trace_{name}"))
        .ok()?
        .into_iter()
        .find(|t| matches!(t, Type::Typedef(_)))?;
    let Type::Ptr(ptr) = strip(btf, typedef)? else {
        return None;
    };
    let Type::FuncProto(proto) = btf.resolve_chained_type(&ptr).ok()? else {
        return None;
    };
    proto
        .parameters
        .iter()
        .skip(1)
        .map(|p| describe(btf, btf.resolve_chained_type(p).ok()?))
        .collect()
}

/// A type as C spells it, without qualifiers or typedef names.
fn describe(btf: &Btf, ty: Type) -> Option<String> {
    Some(match strip(btf, ty)? {
        Type::Ptr(ptr) => format!("{} *", describe(btf, btf.resolve_chained_type(&ptr).ok()?)?),
        Type::Struct(s) => format!("struct {}", btf.resolve_name(&s).ok()?),
        Type::Union(u) => format!("union {}", btf.resolve_name(&u).ok()?),
        Type::Enum(e) => format!("enum {}", btf.resolve_name(&e).ok()?),
        Type::Int(i) => btf.resolve_name(&i).ok()?,
        Type::Void => "void".to_string(),
        other => other.name().to_string(),
    })
}

/// Byte offset of `path[1..]` inside struct `path[0]`, following nested
/// members and looking through anonymous structs and unions on the way.
fn offset_of(btf: &Btf, path: &[&str]) -> Option<u16> {
    u16::try_from(member(btf, path)?.0 / 8).ok()
}

/// Bit offset and type of `path[1..]` inside struct `path[0]`.
fn member(btf: &Btf, path: &[&str]) -> Option<(u32, Type)> {
    let (root, members) = path.split_first()?;
    let mut ty = btf
        .resolve_types_by_name(root)
        .ok()?
        .into_iter()
        .find(|t| matches!(t, Type::Struct(_)))?;
    let mut bits = 0u32;
    for name in members {
        let (offset, member_ty) = find_member(btf, &ty, name)?;
        bits += offset;
        ty = member_ty;
    }
    Some((bits, ty))
}

/// Finds member `name` in a struct or union (searching anonymous members),
/// returning its bit offset and its type with typedefs and qualifiers removed.
fn find_member(btf: &Btf, ty: &Type, name: &str) -> Option<(u32, Type)> {
    let members = match ty {
        Type::Struct(s) | Type::Union(s) => &s.members,
        _ => return None,
    };
    for member in members {
        let member_ty = strip(btf, btf.resolve_chained_type(member).ok()?)?;
        let member_name = btf.resolve_name(member).unwrap_or_default();
        if member_name == name {
            return Some((member.bit_offset(), member_ty));
        }
        if member_name.is_empty()
            && let Some((inner, found)) = find_member(btf, &member_ty, name)
        {
            return Some((member.bit_offset() + inner, found));
        }
    }
    None
}

fn strip(btf: &Btf, mut ty: Type) -> Option<Type> {
    loop {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t).ok()?,
            Type::Const(t) => btf.resolve_chained_type(t).ok()?,
            Type::Volatile(t) => btf.resolve_chained_type(t).ok()?,
            Type::Restrict(t) => btf.resolve_chained_type(t).ok()?,
            Type::TypeTag(t) => btf.resolve_chained_type(t).ok()?,
            _ => return Some(ty),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the build machine's kernel, which must have BTF (the tool
    /// requires it anyway).
    #[test]
    fn finds_offsets_in_running_kernel() {
        let off = kernel_offsets(&load().expect("kernel BTF")).expect("offsets");
        // skc_net follows the address/hash/port words of sock_common.
        assert!(off.sock_net >= 16 && off.sock_net < 256, "{off:?}");
        assert!(off.skb_dev > 0 && off.skb_dev < 64, "{off:?}");
        assert!(off.net_inum > 0, "{off:?}");
        // 6.3+ packs the ephemeral range into one word (this kernel is 6.18).
        assert_ne!(off.net_port_range, NO_FIELD, "{off:?}");
        // enum sock_flags { SOCK_DEAD, SOCK_DONE, ... } since 2.6.
        assert_eq!(off.sock_done_bit, 1, "{off:?}");
    }

    #[test]
    fn reads_tracepoint_arguments() {
        let btf = load().expect("kernel BTF");
        assert_eq!(
            tracepoint_args(&btf, "inet_sock_set_state").unwrap(),
            ["struct sock *", "int", "int"]
        );
        assert_eq!(
            tracepoint_args(&btf, "tcp_retransmit_synack").unwrap(),
            ["struct sock *", "struct request_sock *"]
        );
        assert_eq!(tracepoint_args(&btf, "no_such_tracepoint_xyz"), None);
    }

    #[test]
    fn unknown_member_is_none() {
        let btf = Btf::from_file(VMLINUX_BTF).unwrap();
        assert_eq!(offset_of(&btf, &["sock", "no_such_member"]), None);
        assert_eq!(offset_of(&btf, &["no_such_struct_xyz", "x"]), None);
    }
}
