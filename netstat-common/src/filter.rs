//! The user's filter, shared by the kernel programs (events) and userspace
//! (/proc rows).

/// What the user asked to see (`-4 -6 --port --sport --dport --addr --state
/// --pid`): applied by the kernel programs to events and by userspace to
/// /proc rows, so every mode filters alike. Zero fields match anything.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// `--addr` network, network order (IPv4 in the first 4 bytes).
    pub addr: [u8; 16],
    /// `--addr` prefix as a mask over `addr`: the verifier accepts two
    /// masked word compares far more cheaply than a loop over prefix bits.
    pub addr_mask: [u8; 16],
    pub pid: u32,
    /// Either end's port.
    pub port: u16,
    /// Local port.
    pub sport: u16,
    /// Remote port.
    pub dport: u16,
    /// `1 << state` for each wanted state.
    pub states: u16,
    /// Family of `addr`; 0 = no address filter.
    pub addr_family: u8,
    /// 1: only sockets whose owner's cgroup v2 id is in `CGROUP_FILTER`
    /// (`--cgroup`: the cgroup and those below it); sockets of unknown
    /// owner are passed on, as for `pid`.
    pub by_cgroup: u8,
    /// `1 << family` for each wanted family (AF_INET, AF_INET6); 0 = both.
    pub families: u16,
}

impl Filter {
    /// Whether a connection with these endpoints is wanted (addresses as in
    /// [`Event`]). Either end may match `--port` and `--addr`.
    #[inline(always)]
    pub fn endpoints_match(
        &self,
        family: u8,
        local: &[u8; 16],
        sport: u16,
        remote: &[u8; 16],
        dport: u16,
    ) -> bool {
        self.family_and_addresses_match(family, local, remote)
            && self.ports_match(sport, dport, None)
    }

    /// Whether a socket with these endpoints may ever be wanted: as
    /// `endpoints_match`, except that a local port of 0 (connect() picks it
    /// only after the change to SYN_SENT) could still become any port in
    /// `ephemeral`, the namespace's `ip_local_port_range`. The kernel
    /// programs skip all per-socket work for sockets that fail this, so that
    /// a filter makes excluded traffic cheap.
    #[inline(always)]
    pub fn endpoints_may_match(
        &self,
        family: u8,
        local: &[u8; 16],
        sport: u16,
        remote: &[u8; 16],
        dport: u16,
        ephemeral: (u16, u16),
    ) -> bool {
        let unknown = if sport == 0 { Some(ephemeral) } else { None };
        self.family_and_addresses_match(family, local, remote)
            && self.ports_match(sport, dport, unknown)
    }

    /// Whether the filter looks at endpoints at all (family, address, port).
    #[inline(always)]
    pub fn has_endpoint_terms(&self) -> bool {
        self.families != 0
            || self.addr_family != 0
            || self.port != 0
            || self.sport != 0
            || self.dport != 0
    }

    /// `unknown_local`: the local port is not chosen yet and will be one in
    /// this range.
    #[inline(always)]
    fn ports_match(&self, sport: u16, dport: u16, unknown_local: Option<(u16, u16)>) -> bool {
        let local = |want: u16| match unknown_local {
            Some((low, high)) => low <= want && want <= high,
            None => want == sport,
        };
        (self.sport == 0 || local(self.sport))
            && (self.dport == 0 || self.dport == dport)
            && (self.port == 0 || local(self.port) || self.port == dport)
    }

    #[inline(always)]
    fn family_and_addresses_match(&self, family: u8, local: &[u8; 16], remote: &[u8; 16]) -> bool {
        if self.families != 0 && self.families & (1 << (family & 15)) == 0 {
            return false;
        }
        self.addr_family == 0
            || (self.addr_family == family && (self.in_network(local) || self.in_network(remote)))
    }

    #[inline(always)]
    fn in_network(&self, addr: &[u8; 16]) -> bool {
        let words = |a: &[u8; 16]| -> [u64; 2] {
            let mut w = [0u8; 8];
            w.copy_from_slice(&a[..8]);
            let hi = u64::from_ne_bytes(w);
            w.copy_from_slice(&a[8..]);
            [hi, u64::from_ne_bytes(w)]
        };
        let (a, net, mask) = (words(addr), words(&self.addr), words(&self.addr_mask));
        (a[0] ^ net[0]) & mask[0] == 0 && (a[1] ^ net[1]) & mask[1] == 0
    }

    /// Whether a socket in `state` is wanted.
    #[inline(always)]
    pub fn state_matches(&self, state: u8) -> bool {
        self.states == 0 || self.states & (1 << (state & 15)) != 0
    }

    /// Whether a state change is wanted: one into or out of a wanted state.
    #[inline(always)]
    pub fn transition_matches(&self, old: u8, new: u8) -> bool {
        self.state_matches(old) || self.state_matches(new)
    }

    /// Whether a socket owned by `pid` (None: owner unknown here) is wanted.
    /// The kernel passes sockets of unknown owner on: userspace may know it
    /// from /proc.
    #[inline(always)]
    pub fn pid_matches(&self, pid: Option<u32>) -> bool {
        self.pid == 0 || pid.is_none_or(|p| p == self.pid)
    }
}
