//! The maps the programs share with userspace, and the counters in them.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
use netstat_common::{
    EndpointKey, Event, ListenKey, ListenOwner, NetnsStats, OwnerStats, ProgramKey, RemoteStats,
    SockInfo, counter, stat,
};

use crate::{
    config::{CONFIG, cfg},
    pair::tp,
};

/// Default 16 MiB (~160k events, a 16k-connection burst the consumer has not
/// caught up with yet); userspace may resize it with `--ring-size`.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);

/// Live sockets the kernel side has seen, keyed by socket address. Bounded
/// (userspace sizes it, `--max-sockets`) and least-recently-used: a flood of
/// idle sockets cannot keep a new one out; what it evicts is counted
/// (`counter::SOCKS_ADDED`, `SOCKS_REMOVED`).
#[map]
pub(crate) static SOCKS: LruHashMap<u64, SockInfo> =
    LruHashMap::with_max_entries(netstat_common::maps::SOCKS_ENTRIES, 0);

/// Owners of listening ports, so that accepted children inherit them (LRU
/// as `SOCKS`, an eighth of its size).
#[map]
pub(crate) static LISTENERS: LruHashMap<ListenKey, ListenOwner> = LruHashMap::with_max_entries(
    netstat_common::maps::SOCKS_ENTRIES / netstat_common::maps::LISTENERS_PER_SOCKS,
    0,
);

#[map]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

/// Traffic counts for `--summary` (indices in `netstat_common::stat`).
#[map]
pub(crate) static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// `STATS` per network namespace, for `--metrics --netns all`; namespaces
/// long unseen make room for new ones.
#[map]
pub(crate) static NETNS_STATS: LruPerCpuHashMap<u32, NetnsStats> =
    LruPerCpuHashMap::with_max_entries(1024, 0);

/// One all-zero `NetnsStats`, the value a namespace's entry starts from (too
/// large for the stack).
#[map]
pub(crate) static ZERO_STATS: PerCpuArray<NetnsStats> = PerCpuArray::with_max_entries(1, 0);

/// Failures, resets and retransmits per remote endpoint, for the summary's
/// top lists; least recently used endpoints make room for new ones.
#[map]
pub(crate) static REMOTES: LruPerCpuHashMap<EndpointKey, RemoteStats> =
    LruPerCpuHashMap::with_max_entries(8192, 0);

/// What the sockets of each owner's cgroup (v2 id) did, for the summary's
/// and the metrics' lists of who opens connections.
#[map]
pub(crate) static CGROUPS: LruPerCpuHashMap<u64, OwnerStats> =
    LruPerCpuHashMap::with_max_entries(4096, 0);

/// Each listening endpoint's drops (`sk_drops`) when its listeners closed,
/// summed, so that `--summary` still counts the overflows of a listener
/// that closed within an interval.
#[map]
pub(crate) static CLOSED_LISTENERS: LruHashMap<EndpointKey, u64> =
    LruHashMap::with_max_entries(1024, 0);

/// The cgroup v2 ids `--cgroup` keeps (the cgroup and those below it),
/// kept up to date by userspace.
#[map]
pub(crate) static CGROUP_FILTER: HashMap<u64, u8> = HashMap::with_max_entries(65_536, 0);

/// The same per owning process (pid, command, cgroup).
#[map]
pub(crate) static PROGRAMS: LruPerCpuHashMap<ProgramKey, OwnerStats> =
    LruPerCpuHashMap::with_max_entries(8192, 0);

/// Per CPU: marks of the events the first program of a pair has handled,
/// for the second to take.
///
/// The kernel skips a BTF-tracepoint program whose tracepoint fires while
/// that same program runs on the CPU (a softirq interrupting a system
/// call's state change: 1,000-2,000 times in a 100,000-connection
/// normal-close storm here, never in a reset storm), and the event would
/// be lost. So each tracepoint has two programs
/// running the same code, the first attached before the second (a
/// tracepoint calls its probes in attach order). An event nested in the
/// first program's run still reaches the second, which finds no mark and
/// acts on it; one nested in the second's run reaches the first. A mark
/// (rather than an "inside" flag) also covers the instants the kernel holds
/// its guard before and after our code runs.
///
/// A mark names the event (socket, what) and the invocation: the address of
/// the argument array, which the kernel builds at the same stack address
/// for both programs of one invocation and elsewhere for nested ones. So a
/// mark left by a nested first program whose second was skipped (nested in
/// the second's own run) is not taken for a later event of the same socket,
/// and the slots are a ring: such leftovers, and those of the moment before
/// the second programs were attached, are overwritten by later marks
/// instead of filling the slots. A mark is only overwritten before its
/// second program runs if sixteen other events come between the two
/// programs of one invocation; the second then acts on the event again.
#[map]
pub(crate) static HANDLED: PerCpuArray<Marks> = PerCpuArray::with_max_entries(1, 0);

pub(crate) const MARK_SLOTS: usize = 16;

/// Per CPU, one slot per program and nesting level: the event that program
/// is putting together. On the stack it would take 120 of the 512 bytes
/// that a whole call chain may use on 6.1's verifier. Since 5.12 the kernel
/// never runs a program nested in itself on a CPU (it skips such a run, see
/// `HANDLED`); 5.10 runs it, a softirq's change inside a system call's, so
/// a run takes the next level's slot while the program's own is in use
/// (`NESTING`).
#[map]
pub(crate) static SCRATCH: PerCpuArray<Event> =
    PerCpuArray::with_max_entries(tp::PROGRAMS * NESTING_LEVELS, 0);

/// Levels of `SCRATCH`: a system call's run and a softirq's inside it (TCP
/// changes state in no other context, and softirqs do not nest).
pub(crate) const NESTING_LEVELS: u32 = 2;

/// Per CPU and program: how many of its runs are under way (`PairRun`).
#[map]
pub(crate) static NESTING: PerCpuArray<u32> = PerCpuArray::with_max_entries(tp::PROGRAMS, 0);

#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Marks {
    /// Marks made on this CPU so far; the next goes to `next % MARK_SLOTS`.
    pub(crate) next: u64,
    /// (socket, what, invocation); socket 0 = free.
    pub(crate) slots: [(u64, u64, u64); MARK_SLOTS],
}

/// Counts `n` at `STATS[index]`, and in the namespace's own `NETNS_STATS`
/// entry when asked (`--metrics --netns all`).
#[inline(always)]
pub(crate) fn add_stat(netns: u32, index: u32, n: u64) {
    if let Some(count) = STATS.get_ptr_mut(index) {
        // SAFETY: a map value of this CPU, valid while the program runs.
        unsafe { *count += n };
    }
    if cfg(&CONFIG.count_per_netns) != 0 {
        add_netns_stat(netns, index, n);
    }
}

/// Inlined: as a function of its own it would spare the verifier work, but
/// its frame would bring the deepest call chain to 544 of the 512 bytes of
/// stack 5.10 allows.
#[inline(always)]
fn add_netns_stat(netns: u32, index: u32, n: u64) {
    let entry = match NETNS_STATS.get_ptr_mut(&netns) {
        Some(entry) => entry,
        None => {
            let Some(zero) = ZERO_STATS.get_ptr(0) else {
                return;
            };
            // SAFETY: a map value, read by the helper while we run.
            let _ = NETNS_STATS.insert(&netns, unsafe { &*zero }, 0);
            let Some(entry) = NETNS_STATS.get_ptr_mut(&netns) else {
                return;
            };
            entry
        }
    };
    // The mask keeps the index inside the array for the verifier. Read
    // volatile, or the compiler, knowing the index small, drops the mask
    // and 6.1's verifier (which lost the bound in a spill) refuses the
    // access.
    // SAFETY: a read of a local.
    let index = unsafe { core::ptr::read_volatile(&index) } as usize & (NetnsStats::SLOTS - 1);
    // SAFETY: this CPU's value of a per-CPU map, valid while we run.
    unsafe { (*entry).counts[index] += n };
}

/// One duration into the histogram at `STATS[histogram]` (see
/// `stat::CONNECT_DURATION`): its bucket, and the sum.
#[inline(always)]
pub(crate) fn add_duration(netns: u32, histogram: u32, ns: u64) {
    add_stat(netns, histogram + stat::duration_bucket(ns), 1);
    add_stat(netns, histogram + stat::HISTOGRAM_BUCKETS, ns);
}

/// Stores the record of socket `sk`, which had none (records that exist
/// are written in place): counted as added unless another CPU added it
/// first. False when the kernel refused the entry.
#[inline(always)]
pub(crate) fn remember_sock(sk: u64, info: &SockInfo) -> bool {
    if SOCKS.insert(sk, info, u64::from(BPF_NOEXIST)).is_ok() {
        add_counter(counter::SOCKS_ADDED);
        return true;
    }
    SOCKS.insert(sk, info, 0).is_ok()
}

/// Frees socket `sk`'s record, if it has one. A lookup costs less than a
/// failed delete, and most sockets of a filtered-out storm have none.
#[inline(always)]
pub(crate) fn forget_sock(sk: u64) {
    if SOCKS.get_ptr(sk).is_some() && SOCKS.remove(sk).is_ok() {
        add_counter(counter::SOCKS_REMOVED);
    }
}

#[inline(always)]
pub(crate) fn add_counter(index: u32) {
    add_to_counter(index, 1);
}

#[inline(always)]
pub(crate) fn add_to_counter(index: u32, n: u64) {
    if let Some(count) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: a map value of this CPU, valid while the program runs.
        unsafe { *count += n };
    }
}
