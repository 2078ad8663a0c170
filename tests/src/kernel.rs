//! What the running kernel gives, as its BTF shows it: the tests check the
//! answer a kernel can give (a count, or `null` and a note) rather than
//! assuming the newest kernel's.

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
