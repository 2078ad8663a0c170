//! `enetstat -E --json`: one JSON object per event (NDJSON). Field names are
//! part of the interface and documented in the README; every object has
//! every field, `null` where it does not apply.

use std::fmt::Write as _;

use crate::{
    clock::TimeFormat,
    decoder::{EventKind, NetEvent, StateAge},
    render::{Millis, tcp_proto},
};

#[derive(Default)]
pub struct JsonLog {
    time: TimeFormat,
}

impl JsonLog {
    /// Appends one event's object (without newline) to `out`.
    pub fn write_line(&mut self, out: &mut String, ev: &NetEvent) {
        out.push_str("{\"time\":\"");
        self.time.write_utc(out, ev.wall_ns);
        let _ = write!(out, "\",\"event\":\"{}\"", ev.kind.name());
        match &ev.owner {
            Some(o) => {
                let _ = write!(out, ",\"pid\":{},\"program\":", o.pid);
                write_json_string(out, &o.program);
            }
            None => out.push_str(",\"pid\":null,\"program\":null"),
        }
        let _ = write!(
            out,
            ",\"proto\":\"{}\",\"local\":\"{}\",\"remote\":\"{}\"",
            tcp_proto(ev),
            ev.local,
            ev.remote
        );
        let _ = match ev.kind {
            EventKind::State { old, new } => write!(
                out,
                ",\"old_state\":\"{}\",\"new_state\":\"{}\"",
                old.name(),
                new.name()
            ),
            _ => write!(out, ",\"old_state\":null,\"new_state\":null"),
        };
        let _ = write!(out, ",\"state\":\"{}\"", ev.state.name());
        let _ = match ev.age {
            Some(StateAge::Exact(ns)) => write!(
                out,
                ",\"prev_state_ms\":{},\"prev_state_ms_at_least\":null",
                Millis(ns)
            ),
            Some(StateAge::AtLeast(ns)) => write!(
                out,
                ",\"prev_state_ms\":null,\"prev_state_ms_at_least\":{}",
                ns / 1_000_000
            ),
            None => write!(
                out,
                ",\"prev_state_ms\":null,\"prev_state_ms_at_least\":null"
            ),
        };
        let _ = write!(
            out,
            ",\"after_gap\":{},\"retransmits\":{},\"netns\":{},\"socket\":\"{:016x}\"",
            ev.after_gap, ev.retransmits, ev.netns, ev.socket
        );
        match ev.failure {
            Some(f) => {
                let _ = write!(out, ",\"failure\":\"{}\"", f.name());
            }
            None => out.push_str(",\"failure\":null"),
        }
        match ev.reset_reason {
            Some(r) => {
                let _ = write!(out, ",\"reset_reason\":\"{r}\"");
            }
            None => out.push_str(",\"reset_reason\":null"),
        }
        match ev.drop_reason {
            Some(r) => {
                let _ = write!(out, ",\"drop_reason\":\"{r}\"");
            }
            None => out.push_str(",\"drop_reason\":null"),
        }
        match ev.totals {
            Some(t) => {
                match t.lifetime_ns {
                    Some(ns) => {
                        let _ = write!(out, ",\"lifetime_ms\":{}", Millis(ns));
                    }
                    None => out.push_str(",\"lifetime_ms\":null"),
                }
                let _ = write!(
                    out,
                    ",\"bytes_acked\":{},\"bytes_received\":{},\"srtt_ms\":{},\"total_retransmits\":{}}}",
                    t.bytes_acked,
                    t.bytes_received,
                    Millis(t.srtt_ns),
                    t.total_retransmits
                );
            }
            None => out.push_str(
                ",\"lifetime_ms\":null,\"bytes_acked\":null,\"bytes_received\":null,\"srtt_ms\":null,\"total_retransmits\":null}",
            ),
        }
    }
}

/// Appends `s` as a JSON string literal (program names may hold anything).
fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // C0, DEL and C1: a terminal showing the log obeys them raw.
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_program_names() {
        let mut s = String::new();
        write_json_string(&mut s, "a\"b\\c\nd\x1b\u{9b}\u{fffd}");
        assert_eq!(s, r#""a\"b\\c\u000ad\u001b\u009b�""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\x1b\u{9b}\u{fffd}");
    }
}
