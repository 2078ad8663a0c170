//! `enetstat -E --json`: one JSON object per event (NDJSON). Field names are
//! part of the interface and documented in the README; every object has
//! every field, `null` where it does not apply.

use std::{fmt::Write as _, net::SocketAddr};

use crate::{
    clock::TimeFormat,
    decoder::{EventKind, Lost, NetEvent, StateAge},
    render::{push_json_string, tcp_proto},
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
    match &ev.owner {
        Some(o) => {
            out.push_str(",\"pid\":");
            push_u64(out, u64::from(o.pid));
            out.push_str(",\"program\":");
            push_json_string(out, &o.program);
        }
        None => out.push_str(",\"pid\":null,\"program\":null"),
    }
    out.push_str(",\"cgroup\":");
    match &ev.cgroup {
        Some(path) => push_json_string(out, path),
        None => out.push_str("null"),
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

    /// Every key of an event's object and of a loss record.
    pub(crate) fn every_field() -> Vec<String> {
        let raw = netstat_common::Event {
            kind: netstat_common::kind::STATE,
            oldstate: netstat_common::tcp_state::FIN_WAIT2,
            newstate: netstat_common::tcp_state::CLOSE,
            ..Default::default()
        };
        let decoder = crate::decoder::Decoder::new(0, 0, Default::default());
        let mut log = JsonLog::default();
        let mut lines = [String::new(), String::new()];
        log.write_line(&mut lines[0], &decoder.decode(&raw));
        let lost = Lost {
            wall_ns: 0,
            count: 1,
        };
        log.write_lost(&mut lines[1], &lost);
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
