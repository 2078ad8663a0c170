//! What the running kernel gives, as its BTF shows it: the tests check the
//! answer a kernel can give (a count, or `null` and a note) rather than
//! assuming the newest kernel's; and the maps a running enetstat holds.

use netstat_common::{SockInfo, maps};
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

/// Rewrites, through bpftool, the (state, prev_state) of each `SOCKS`
/// record of the enetstat process `tracer` for which `rewrite` (given the
/// record's tgid and its (state, prev_state)) returns new ones. Returns how
/// many records it rewrote.
pub fn rewrite_socket_records(
    tracer: u32,
    rewrite: impl Fn(u32, (u8, u8)) -> Option<(u8, u8)>,
) -> usize {
    const TGID: usize = std::mem::offset_of!(SockInfo, tgid);
    const STATE: usize = std::mem::offset_of!(SockInfo, state);
    const PREV_STATE: usize = std::mem::offset_of!(SockInfo, prev_state);
    let map = socks_map_of(tracer);
    let dump: Value =
        serde_json::from_str(&crate::sh("bpftool", &["-j", "map", "dump", "id", &map])).unwrap();
    let mut rewritten = 0;
    for entry in dump.as_array().unwrap() {
        let key = hex_bytes(&entry["key"]);
        let mut value = hex_bytes(&entry["value"]);
        let tgid = u32::from_ne_bytes(value[TGID..TGID + 4].try_into().unwrap());
        let Some(new) = rewrite(tgid, (value[STATE], value[PREV_STATE])) else {
            continue;
        };
        (value[STATE], value[PREV_STATE]) = new;
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>();
        let mut args = vec!["map", "update", "id", &map, "key", "hex"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        args.extend(hex(&key));
        args.extend(["value".to_string(), "hex".into()]);
        args.extend(hex(&value));
        crate::sh(
            "bpftool",
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        rewritten += 1;
    }
    rewritten
}
