//! What the running kernel gives, as its BTF shows it: the tests check the
//! answer a kernel can give (a count, or `null` and a note) rather than
//! assuming the newest kernel's; and the maps a running enetstat holds.

use netstat_common::maps;
use serde_json::Value;

/// Whether the running kernel's BTF holds `name` (a type, member or
/// enumerator name).
pub fn btf_has(name: &str) -> bool {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").expect("the kernel's BTF");
    btf.windows(name.len()).any(|w| w == name.as_bytes())
}

/// The kernel names the resets it sends (`enum sk_rst_reason`, Linux 6.10).
pub fn names_reset_reasons() -> bool {
    btf_has("SK_RST_REASON_NO_SOCKET")
}

/// The kernel counts the program runs it skipped
/// (`bpf_prog_info.recursion_misses`, Linux 5.12).
pub fn counts_skipped_runs() -> bool {
    btf_has("recursion_misses")
}

/// `skb:kfree_skb` hands over a drop reason (`enum skb_drop_reason`,
/// Linux 5.17).
pub fn names_drop_reasons() -> bool {
    btf_has("SKB_DROP_REASON_NOT_SPECIFIED")
}

/// `bpftool`'s JSON bytes (`["0x0a", ...]`) as bytes.
pub fn hex_bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect()
}

/// The id of the `SOCKS` map that process `pid` holds.
pub fn socks_map_of(pid: u32) -> String {
    let fdinfo = format!("/proc/{pid}/fdinfo");
    for entry in std::fs::read_dir(&fdinfo).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        let Some(id) = text.lines().find_map(|l| l.strip_prefix("map_id:")) else {
            continue;
        };
        let id = id.trim();
        let info: Value =
            serde_json::from_str(&crate::sh("bpftool", &["-j", "map", "show", "id", id])).unwrap();
        if info["name"] == maps::SOCKS {
            return id.to_string();
        }
    }
    panic!("enetstat {pid} holds no SOCKS map");
}
