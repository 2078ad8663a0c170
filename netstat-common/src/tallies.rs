//! The keys and values of the maps that count per remote endpoint, per
//! listening endpoint and per owner, for `--summary` and `--metrics`.

use crate::TASK_COMM_LEN;

/// How much the kernel side counts per owner (`Config::count_owners`).
pub mod owners {
    pub const NONE: u8 = 0;
    /// Connects begun, by cgroup (`CGROUPS`).
    pub const CGROUP_CONNECTS: u8 = 1;
    /// Connects, failures and resets, by cgroup and by process.
    pub const ALL: u8 = 2;
}

/// An endpoint as one network namespace sees it: the key of `REMOTES` (a
/// remote endpoint, for the summary's top lists) and of `CLOSED_LISTENERS`
/// (a listener's local endpoint).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    pub addr: [u8; 16],
    pub port: u16,
    pub family: u8,
    pub _pad: u8,
    pub netns: u32,
}

/// Value of the `REMOTES` map (per CPU; userspace sums).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteStats {
    pub failed_connects: u64,
    pub resets: u64,
    pub retransmits: u64,
    /// TCP packets from this endpoint the kernel dropped.
    pub drops: u64,
}

/// Key of the `PROGRAMS` map: a process (with its cgroup) that owns
/// connections, for the summary's top lists.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProgramKey {
    /// The cgroup v2 id (its directory's inode) when the process acted.
    pub cgroup: u64,
    pub tgid: u32,
    pub _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// Value of the `CGROUPS` (keyed by cgroup v2 id) and `PROGRAMS` maps (per
/// CPU; userspace sums): what the sockets a process owns did.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnerStats {
    /// Connects begun (CLOSE -> SYN_SENT).
    pub opened: u64,
    /// Connections that ended with a failure verdict.
    pub failed: u64,
    /// Resets received or sent on its connections.
    pub resets: u64,
}

impl OwnerStats {
    /// Adds `other`'s counts (one CPU's, or an earlier reading's).
    pub fn add(&mut self, other: &Self) {
        self.opened += other.opened;
        self.failed += other.failed;
        self.resets += other.resets;
    }
}
