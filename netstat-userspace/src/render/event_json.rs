//! `enetstat -E --json`: one JSON object per event (NDJSON). Field names are
//! part of the interface and documented in the README; every object has
//! every field, `null` where it does not apply.

use std::{fmt::Write as _, net::SocketAddr};

use crate::{
    clock::TimeFormat,
    decoder::{EventKind, Lost, NetEvent, StateAge},
    log_file::{self, Group},
    owners::Owner,
    render::{push_json_string, sockets::InetRow, tcp_proto},
    tcp_state::TcpState,
    textfmt::{push_millis, push_u64},
};

#[derive(Default)]
pub struct JsonLog {
    time: TimeFormat,
}

impl JsonLog {
    /// Appends one event's object (without newline) to `out`, without
    /// `core::fmt` where it can (it was most of `--json`'s CPU in a storm).
    pub fn write_line(&mut self, out: &mut String, ev: &NetEvent) {
        out.push_str("{\"time\":\"");
        self.time.write_utc(out, ev.wall_ns);
        out.push_str("\",\"event\":\"");
        out.push_str(ev.kind.name());
        out.push('"');
        push_owner(out, ev);
        out.push_str(",\"proto\":\"");
        out.push_str(tcp_proto(ev));
        out.push_str("\",\"local\":\"");
        push_endpoint(out, ev.local);
        out.push_str("\",\"remote\":\"");
        push_endpoint(out, ev.remote);
        out.push('"');
        push_states(out, ev);
        out.push_str(",\"after_gap\":");
        out.push_str(if ev.after_gap { "true" } else { "false" });
        out.push_str(",\"peer_fin_pending\":");
        out.push_str(if ev.peer_fin_pending { "true" } else { "false" });
        out.push_str(",\"inbound\":");
        out.push_str(if ev.inbound { "true" } else { "false" });
        out.push_str(",\"retransmits\":");
        push_u64(out, u64::from(ev.retransmits));
        out.push_str(",\"netns\":");
        push_u64(out, u64::from(ev.netns));
        out.push_str(",\"socket\":\"");
        push_hex16(out, ev.socket);
        out.push('"');
        push_reasons(out, ev);
        push_totals(out, ev);
        out.push('}');
    }
}

/// `pid`, `program` and `cgroup`.
fn push_owner(out: &mut String, ev: &NetEvent) {
    push_pid_program(out, ev.owner.as_ref());
    out.push_str(",\"cgroup\":");
    match &ev.cgroup {
        Some(path) => push_json_string(out, path),
        None => out.push_str("null"),
    }
}

/// `pid` and `program`, null when the owner is unknown.
fn push_pid_program(out: &mut String, owner: Option<&Owner>) {
    match owner {
        Some(o) => {
            out.push_str(",\"pid\":");
            push_u64(out, u64::from(o.pid));
            out.push_str(",\"program\":");
            push_json_string(out, &o.program);
        }
        None => out.push_str(",\"pid\":null,\"program\":null"),
    }
}

/// `old_state`, `new_state`, `state` and the time in the state left.
fn push_states(out: &mut String, ev: &NetEvent) {
    match ev.kind {
        EventKind::State { old, new } => {
            out.push_str(",\"old_state\":\"");
            out.push_str(old.name());
            out.push_str("\",\"new_state\":\"");
            out.push_str(new.name());
            out.push('"');
        }
        _ => out.push_str(",\"old_state\":null,\"new_state\":null"),
    }
    out.push_str(",\"state\":\"");
    out.push_str(ev.state.name());
    out.push_str("\",\"prev_state_ms\":");
    match ev.age {
        Some(StateAge::Exact(ns)) => {
            push_millis(out, ns);
            out.push_str(",\"prev_state_ms_at_least\":null");
        }
        Some(StateAge::Bound(ns)) => {
            out.push_str("null,\"prev_state_ms_at_least\":");
            push_u64(out, ns / 1_000_000);
        }
        None => out.push_str("null,\"prev_state_ms_at_least\":null"),
    }
}

/// `failure`, `reset_reason` and `drop_reason`: names or null.
fn push_reasons(out: &mut String, ev: &NetEvent) {
    let names = [
        ("failure", ev.failure.map(|f| f.name())),
        ("reset_reason", ev.reset_reason),
        ("drop_reason", ev.drop_reason),
    ];
    for (key, value) in names {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        match value {
            Some(name) => {
                out.push('"');
                out.push_str(name);
                out.push('"');
            }
            None => out.push_str("null"),
        }
    }
}

/// A connection's totals at its end; null on every other event.
fn push_totals(out: &mut String, ev: &NetEvent) {
    let Some(t) = ev.totals else {
        out.push_str(
            ",\"lifetime_ms\":null,\"bytes_acked\":null,\"bytes_received\":null,\"srtt_ms\":null,\"total_retransmits\":null",
        );
        return;
    };
    out.push_str(",\"lifetime_ms\":");
    match t.lifetime_ns {
        Some(ns) => push_millis(out, ns),
        None => out.push_str("null"),
    }
    out.push_str(",\"bytes_acked\":");
    push_u64(out, t.bytes_acked);
    out.push_str(",\"bytes_received\":");
    push_u64(out, t.bytes_received);
    out.push_str(",\"srtt_ms\":");
    match t.srtt_ns {
        Some(ns) => push_millis(out, ns),
        None => out.push_str("null"),
    }
    out.push_str(",\"total_retransmits\":");
    push_u64(out, u64::from(t.total_retransmits));
}

impl JsonLog {
    /// Appends the record (without newline) that marks where `lost.count`
    /// events are missing from the log.
    pub fn write_lost(&mut self, out: &mut String, lost: &Lost) {
        out.push_str("{\"time\":\"");
        self.time.write_utc(out, lost.wall_ns);
        out.push_str("\",\"event\":\"lost\",\"lost\":");
        push_u64(out, lost.count);
        out.push('}');
    }
}

impl JsonLog {
    /// Appends the log's first record (without newline): its format, so a
    /// reader knows it can read it, and the version that wrote it.
    pub fn write_header(&mut self, out: &mut String, wall_ns: i128) {
        out.push_str("{\"time\":\"");
        self.time.write_utc(out, wall_ns);
        out.push_str("\",\"event\":\"");
        out.push_str(log_file::HEADER);
        out.push_str("\",\"format\":");
        push_u64(out, log_file::FORMAT.into());
        out.push_str(",\"version\":\"");
        out.push_str(env!("CARGO_PKG_VERSION"));
        out.push_str("\"}");
    }

    /// Appends the record (without newline) of one socket of a snapshot or
    /// resync `group` read at `wall_ns`: an event's fields, the state it is
    /// in, and how long a timewait socket has left.
    pub fn write_row(
        &mut self,
        out: &mut String,
        group: Group,
        wall_ns: i128,
        row: &InetRow,
        netns: u32,
    ) {
        let s = row.socket;
        out.push_str("{\"time\":\"");
        self.time.write_utc(out, wall_ns);
        out.push_str("\",\"event\":\"");
        out.push_str(group.name());
        out.push('"');
        push_pid_program(out, row.owner);
        out.push_str(",\"cgroup\":null,\"proto\":\"");
        out.push_str(if s.local.is_ipv6() { "tcp6" } else { "tcp" });
        out.push_str("\",\"local\":\"");
        push_endpoint(out, s.local);
        out.push_str("\",\"remote\":\"");
        push_endpoint(out, s.remote);
        out.push_str("\",\"old_state\":null,\"new_state\":null,\"state\":\"");
        out.push_str(TcpState(s.state).name());
        out.push_str(
            "\",\"prev_state_ms\":null,\"prev_state_ms_at_least\":null,\"after_gap\":false",
        );
        // A timewait socket in FIN_WAIT2 is an orphan waiting for its peer.
        let time_wait = s.timer == 3;
        out.push_str(",\"peer_fin_pending\":");
        out.push_str(if time_wait && s.state == TcpState::FIN_WAIT2.0 {
            "true"
        } else {
            "false"
        });
        out.push_str(",\"retransmits\":");
        push_u64(out, s.retransmits);
        out.push_str(",\"netns\":");
        push_u64(out, u64::from(row.netns.unwrap_or(netns)));
        out.push_str(
            ",\"socket\":null,\"failure\":null,\"reset_reason\":null,\"drop_reason\":null",
        );
        out.push_str(
            ",\"lifetime_ms\":null,\"bytes_acked\":null,\"bytes_received\":null,\"srtt_ms\":null,\"total_retransmits\":null",
        );
        out.push_str(",\"time_wait_left_ms\":");
        match time_wait {
            // The timer counts /proc's 10 ms ticks.
            true => push_u64(out, s.timer_ticks * 10),
            false => out.push_str("null"),
        }
        out.push('}');
    }

    /// Appends a rotated file's last record (without newline): the file
    /// covers the time up to `wall_ns`.
    pub fn write_rotated(&mut self, out: &mut String, wall_ns: i128) {
        out.push_str("{\"time\":\"");
        self.time.write_utc(out, wall_ns);
        out.push_str("\",\"event\":\"");
        out.push_str(log_file::ROTATED);
        out.push_str("\"}");
    }

    /// Appends the record (without newline) that closes a group of `rows`
    /// sockets: a reader replaces its table with them here.
    pub fn write_group_end(&mut self, out: &mut String, group: Group, wall_ns: i128, rows: u64) {
        out.push_str("{\"time\":\"");
        self.time.write_utc(out, wall_ns);
        out.push_str("\",\"event\":\"");
        out.push_str(group.end_name());
        out.push_str("\",\"rows\":");
        push_u64(out, rows);
        out.push('}');
    }
}

/// `addr` as `SocketAddr` displays it (`1.2.3.4:80`, `[::1]:80`).
fn push_endpoint(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u64(out, octet.into());
            }
            out.push(':');
            push_u64(out, v4.port().into());
        }
        SocketAddr::V6(_) => {
            let _ = write!(out, "{addr}");
        }
    }
}

/// `v` as 16 lower-case hex digits (`{:016x}`).
fn push_hex16(out: &mut String, v: u64) {
    for shift in (0..16).rev() {
        let digit = (v >> (shift * 4)) & 0xf;
        out.push(char::from(b"0123456789abcdef"[digit as usize]));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every key of an event's object, a loss record and the log's own
    /// records.
    pub(crate) fn every_field() -> Vec<String> {
        let raw = netstat_common::Event {
            kind: netstat_common::kind::STATE,
            oldstate: netstat_common::tcp_state::FIN_WAIT2,
            newstate: netstat_common::tcp_state::CLOSE,
            ..Default::default()
        };
        let decoder = crate::decoder::Decoder::new(0, 0, Default::default());
        let mut log = JsonLog::default();
        let mut lines = [const { String::new() }; 5];
        log.write_line(&mut lines[0], &decoder.decode(&raw));
        let lost = Lost {
            wall_ns: 0,
            count: 1,
        };
        log.write_lost(&mut lines[1], &lost);
        log.write_header(&mut lines[2], 0);
        let socket = crate::procnet::sockets::InetSocket::from_endpoints(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            netstat_common::tcp_state::TIME_WAIT,
        );
        let row = InetRow {
            proto: crate::render::sockets::InetProto::Tcp,
            socket: &socket,
            owner: None,
            in_state: None,
            netns: None,
        };
        log.write_row(&mut lines[3], Group::Snapshot, 0, &row, 1);
        log.write_group_end(&mut lines[4], Group::Snapshot, 0, 1);
        lines
            .iter()
            .flat_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object().unwrap().keys().cloned().collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn endpoints_and_ids_are_written_as_core_fmt_writes_them() {
        for addr in [
            "127.0.0.1:9",
            "10.200.3.255:65535",
            "[::1]:7000",
            "[fe80::1:2]:1",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut s = String::new();
            push_endpoint(&mut s, addr);
            assert_eq!(s, addr.to_string());
        }
        for id in [0, 1, 0xdead_beef, u64::MAX] {
            let mut s = String::new();
            push_hex16(&mut s, id);
            assert_eq!(s, format!("{id:016x}"));
        }
    }

    #[test]
    fn escapes_program_names() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\x1b\u{9b}\u{fffd}");
        assert_eq!(s, r#""a\"b\\c\u000ad\u001b\u009b�""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\x1b\u{9b}\u{fffd}");
    }
}
