//! `netstat -g`: multicast group memberships.

use std::fmt::Write as _;

use crate::{names::Names, procnet::igmp::Membership};

pub fn header(out: &mut String) {
    out.push_str("IPv6/IPv4 Group Memberships\nInterface       RefCnt Group\n--------------- ------ ---------------------\n");
}

pub fn rows(out: &mut String, names: &Names, groups: &[Membership]) {
    for g in groups {
        let mut group = String::new();
        names.write_host(&mut group, g.group);
        let _ = writeln!(out, "{:<15} {:<6} {group}", g.device, g.users);
    }
}
