//! Output. Renderers turn decoded events and snapshot rows into text or JSON;
//! they know nothing about BPF or /proc.

pub mod event_json;
pub mod event_text;
pub mod groups;
pub mod interfaces;
pub mod live_diff;
pub mod masquerade;
pub mod metrics;
pub mod ready;
pub mod routes;
pub mod sockets;
pub mod statistics;
mod statistics_tables;
pub mod stop;
pub mod summary;

use std::{fmt::Write as _, net::SocketAddr};

use crate::decoder::NetEvent;

/// netstat's protocol column: `tcp` or `tcp6`.
pub fn tcp_proto(ev: &NetEvent) -> &'static str {
    if ev.ipv6 { "tcp6" } else { "tcp" }
}

/// An endpoint as netstat writes one, port 0 as `*` (a summary's inbound
/// peer, counted without its ephemeral port).
pub fn endpoint_text(endpoint: SocketAddr) -> String {
    let text = endpoint.to_string();
    match (endpoint.port(), text.rsplit_once(':')) {
        (0, Some((host, _))) => format!("{host}:*"),
        _ => text,
    }
}

/// Pads the column that started at `start` to `width` and adds the separating
/// space, as `printf("%-*s ")` does (a longer value pushes the line right).
pub fn pad_column(out: &mut String, start: usize, width: usize) {
    crate::textfmt::pad_to(out, start, width);
    out.push(' ');
}

/// Appends `s` as a JSON string literal (program names may hold anything).
pub fn push_json_string(out: &mut String, s: &str) {
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
