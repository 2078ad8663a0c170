//! -M: Linux 2.4 replaced /proc/net/ip_masquerade with connection tracking,
//! so masqueraded connections are the conntrack entries with source NAT.

use anyhow::Result;

use crate::{
    fail,
    names::Names,
    procnet::{self, conntrack},
    render::masquerade,
};

const CONNTRACK: &str = "/proc/net/nf_conntrack";

pub fn list(names: &Names, out: &mut String) -> Result<()> {
    let Some(text) = procnet::read_optional(CONNTRACK)? else {
        return Err(fail::with_code(
            1,
            "no support for `ip_masquerade' on this system, and no /proc/net/nf_conntrack to read NAT state from (modprobe nf_conntrack)",
        ));
    };
    eprintln!(
        "enetstat: this kernel has no ip_masquerade table; listing source-NATed connections from {CONNTRACK}"
    );
    masquerade::header(out);
    for t in conntrack::parse(&text, CONNTRACK)? {
        if t.is_masqueraded() {
            masquerade::row(out, names, &t);
        }
    }
    Ok(())
}
