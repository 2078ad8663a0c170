//! `enetstat -E`: one aligned text line per event.

use std::fmt::Write as _;

use crate::{
    clock::TimeFormat,
    decoder::{CloseTotals, EventKind, Lost, NetEvent, StateAge},
    names::Names,
    render::{pad_column, tcp_proto},
    textfmt::{push_millis, push_right, push_u64, right_align},
};

const HEADER: &str = "Time            PID/Program name     Proto Local Address           Foreign Address         Event                       Prev(ms) Retrans";

pub struct TextLog {
    names: Names,
    time: TimeFormat,
    /// Events from several namespaces: a Netns column.
    netns: bool,
}

impl TextLog {
    pub fn new(names: Names, netns: bool) -> Self {
        Self {
            names,
            time: TimeFormat::default(),
            netns,
        }
    }

    pub fn header(&self) -> String {
        let netns = if self.netns { " Netns     " } else { "" };
        format!("{HEADER}{netns} Details")
    }

    /// Appends one event's line (without newline) to `out`.
    pub fn write_line(&mut self, out: &mut String, ev: &NetEvent) {
        let start = out.len();
        self.time.write_local(out, ev.wall_ns);
        pad_column(out, start, 15);

        let start = out.len();
        write_owner(out, ev);
        pad_column(out, start, 20);

        let start = out.len();
        out.push_str(tcp_proto(ev));
        pad_column(out, start, 5);

        for addr in [ev.local, ev.remote] {
            let start = out.len();
            self.names.write_endpoint(out, addr, "tcp");
            pad_column(out, start, 23);
        }

        let start = out.len();
        write_event(out, ev);
        pad_column(out, start, 27);

        let start = out.len();
        match ev.age {
            Some(StateAge::Exact(ns)) => push_millis(out, ns),
            Some(StateAge::Bound(ns)) => {
                out.push('>');
                push_u64(out, ns / 1_000_000);
            }
            None => out.push('-'),
        }
        right_align(out, start, 8);
        out.push(' ');
        push_right(out, u64::from(ev.retransmits), 7);
        if self.netns {
            let _ = write!(out, " {:<10}", ev.netns);
        }
        write_details(out, ev);
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
    }
}

impl TextLog {
    /// Appends the line (without newline) that marks where `lost.count`
    /// events are missing from the log.
    pub fn write_lost(&mut self, out: &mut String, lost: &Lost) {
        self.time.write_local(out, lost.wall_ns);
        out.push_str(" LOST ");
        push_u64(out, lost.count);
        out.push_str(" events here: the ring buffer was full (raise --ring-size)");
    }
}

/// The Details column: a gap before the change, how a connection failed,
/// why a reset was sent and, as a connection ends, its totals.
fn write_details(out: &mut String, ev: &NetEvent) {
    out.push(' ');
    if ev.after_gap {
        out.push_str("after-gap ");
    }
    if ev.peer_fin_pending {
        out.push_str("orphaned, peer's FIN pending ");
    }
    if let Some(failure) = ev.failure {
        let _ = write!(out, "{} ", failure.name());
    }
    if let Some(reason) = ev.reset_reason.or(ev.drop_reason) {
        let _ = write!(out, "reason {reason} ");
    }
    if let Some(CloseTotals {
        lifetime_ns,
        bytes_acked,
        bytes_received,
        srtt_ns,
        total_retransmits,
    }) = ev.totals
    {
        out.push_str("lifetime ");
        match lifetime_ns {
            Some(ns) => {
                push_millis(out, ns);
                out.push_str("ms");
            }
            None => out.push('?'),
        }
        out.push_str(" acked ");
        push_u64(out, bytes_acked);
        out.push_str("B received ");
        push_u64(out, bytes_received);
        out.push_str("B srtt ");
        match srtt_ns {
            Some(ns) => {
                push_millis(out, ns);
                out.push_str("ms");
            }
            None => out.push('?'),
        }
        out.push_str(" retrans ");
        push_u64(out, u64::from(total_retransmits));
    }
}

/// PID/Program name as netstat prints it (`-` when unknown), within its 20 columns.
fn write_owner(out: &mut String, ev: &NetEvent) {
    let start = out.len();
    match &ev.owner {
        Some(o) => {
            push_u64(out, u64::from(o.pid));
            out.push('/');
            out.push_str(&o.program);
            let mut end = (start + 20).min(out.len());
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
        }
        None => out.push('-'),
    }
}

fn write_event(out: &mut String, ev: &NetEvent) {
    let (what, state) = match ev.kind {
        EventKind::State { old, new } => {
            out.push_str(old.name());
            (" -> ", new.name())
        }
        EventKind::Retransmit => ("RETRANSMIT in ", ev.state.name()),
        EventKind::RetransmitSynack => ("SYNACK RETRANSMIT in ", ev.state.name()),
        EventKind::ResetSent if ev.state.0 == 0 => ("RESET sent (no socket)", ""),
        EventKind::ResetSent => ("RESET sent in ", ev.state.name()),
        EventKind::ResetReceived => ("RESET received in ", ev.state.name()),
        EventKind::Drop => ("DROPPED by the kernel", ""),
    };
    out.push_str(what);
    out.push_str(state);
}

#[cfg(test)]
mod tests {
    use netstat_common::{AF_INET, Event, flags, kind, tcp_state};

    use super::*;
    use crate::{decoder::Decoder, names::Numeric, owners::TcpOwners, render::event_json::JsonLog};

    /// FIN_WAIT2 -> CLOSE of a socket whose change into FIN_WAIT2 was never
    /// seen, as text and as JSON.
    #[test]
    fn a_change_after_a_gap_says_so_and_claims_no_time() {
        let mut raw = Event {
            ts_ns: 5_000_000,
            prev_ts_ns: 2_000_000,
            kind: kind::STATE,
            family: AF_INET,
            oldstate: tcp_state::FIN_WAIT2,
            newstate: tcp_state::CLOSE,
            flags: flags::AFTER_GAP,
            sport: 40000,
            dport: 80,
            ..Event::default()
        };
        raw.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        raw.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let ev = Decoder::new(1_000_000, 0, TcpOwners::default()).decode(&raw);
        let numeric = Numeric {
            hosts: true,
            ports: true,
            users: true,
        };
        let mut text = String::new();
        TextLog::new(Names::new(numeric), false).write_line(&mut text, &ev);
        assert!(
            text.ends_with("FIN_WAIT2 -> TIME_WAIT             -       0 after-gap lifetime ? acked 0B received 0B srtt ? retrans 0"),
            "{text}"
        );
        let mut json = String::new();
        JsonLog::default().write_line(&mut json, &ev);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["after_gap"], true);
        assert_eq!(v["prev_state_ms"], serde_json::Value::Null);
    }

    /// A loss mark, as text and as JSON: where, and how many.
    #[test]
    fn a_loss_is_one_line_with_its_count() {
        let lost = Lost {
            wall_ns: 1_700_000_000_123_456_789,
            count: 2043,
        };
        let numeric = Numeric {
            hosts: true,
            ports: true,
            users: true,
        };
        let mut text = String::new();
        TextLog::new(Names::new(numeric), false).write_lost(&mut text, &lost);
        assert!(
            text.ends_with(
                ".123456 LOST 2043 events here: the ring buffer was full (raise --ring-size)"
            ),
            "{text}"
        );
        let mut json = String::new();
        JsonLog::default().write_lost(&mut json, &lost);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["event"], "lost");
        assert_eq!(v["lost"], 2043);
        assert_eq!(v["time"], "2023-11-14T22:13:20.123456789Z");
    }
}
