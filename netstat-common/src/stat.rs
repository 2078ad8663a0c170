//! Indices of the per-CPU `STATS` array: traffic counted in the kernel for
//! `--summary`, so that the figures do not depend on events reaching
//! userspace. Only events that pass the `Filter` count.

/// State changes: index `old * 16 + new`, with `new` as
/// [`effective_new_state`](super::effective_new_state) gives it.
pub const TRANSITIONS: u32 = 0;
pub const RETRANSMITS: u32 = 256;
pub const SYNACK_RETRANSMITS: u32 = 257;
pub const RESETS_SENT: u32 = 258;
pub const RESETS_RECEIVED: u32 = 259;
/// Failed connection attempts and resets: `FAILURES + failure::*`.
pub const FAILURES: u32 = 260;
/// Durations, as histograms of `HISTOGRAM_BUCKETS` counts
/// ([`duration_bucket`]) followed by the sum of the durations in ns.
/// SYN_SENT -> ESTABLISHED:
pub const CONNECT_DURATION: u32 = FAILURES + super::failure::SLOTS;
/// From connect or accept (CLOSE -> SYN_SENT, LISTEN -> SYN_RECV) to
/// the connection's end:
pub const LIFETIME: u32 = CONNECT_DURATION + HISTOGRAM_BUCKETS + 1;
/// SYN_RECV -> ESTABLISHED (a listener's child, made at the handshake's
/// last ACK):
pub const ACCEPT_DURATION: u32 = LIFETIME + HISTOGRAM_BUCKETS + 1;
/// Resets sent, by the kernel's reason: `RESET_REASONS + enum
/// sk_rst_reason`, for the first `RESET_REASON_SLOTS` reasons.
pub const RESET_REASONS: u32 = ACCEPT_DURATION + HISTOGRAM_BUCKETS + 1;
pub const RESET_REASON_SLOTS: u32 = 64;
/// TCP packets dropped, by the kernel's `enum skb_drop_reason`:
/// `DROPS + reason`, for the first `DROP_REASON_SLOTS` reasons.
pub const DROPS: u32 = RESET_REASONS + RESET_REASON_SLOTS;
pub const DROP_REASON_SLOTS: u32 = 128;
/// Retransmitted SYNs (a connect's; `RETRANSMITS` counts data segments).
pub const SYN_RETRANSMITS: u32 = DROPS + DROP_REASON_SLOTS;
pub const COUNT: u32 = SYN_RETRANSMITS + 1;

/// Bucket `b` counts durations under 2^b microseconds; the last one
/// counts every longer one too.
pub const HISTOGRAM_BUCKETS: u32 = 40;

/// The bucket of a duration: the bit length of its microseconds. Without
/// a branch per bit (BPF has no count-leading-zeros instruction; LLVM
/// expands it into shifts and masks): each branch would be a path of its
/// own for the verifier, with the bucket's value known on it.
#[inline(always)]
pub fn duration_bucket(ns: u64) -> u32 {
    let bits = u64::BITS - (ns / 1000).leading_zeros();
    bits.min(HISTOGRAM_BUCKETS - 1)
}

/// The index of the change `old` -> `new` (states as the kernel numbers them).
#[inline(always)]
pub fn transition(old: u8, new: u8) -> u32 {
    TRANSITIONS + (old as u32 & 15) * 16 + (new as u32 & 15)
}

#[cfg(test)]
mod tests {
    use super::{HISTOGRAM_BUCKETS, duration_bucket};

    #[test]
    fn a_duration_falls_in_the_bucket_of_its_microseconds_bit_length() {
        assert_eq!(duration_bucket(0), 0);
        assert_eq!(duration_bucket(999), 0);
        assert_eq!(duration_bucket(1_000), 1);
        assert_eq!(duration_bucket(1_999), 1);
        assert_eq!(duration_bucket(2_000), 2);
        // 1 ms = 1000 us: under 2^10.
        assert_eq!(duration_bucket(1_000_000), 10);
        assert_eq!(duration_bucket(1_024_000), 11);
        assert_eq!(duration_bucket(u64::MAX), HISTOGRAM_BUCKETS - 1);
        for ns in [1_000u64, 123_456, 7_000_000, 90_000_000_000] {
            let b = duration_bucket(ns);
            assert!(
                ns / 1000 < 1 << b && ns / 1000 >= (1 << b) >> 1,
                "{ns} in {b}"
            );
        }
    }
}
