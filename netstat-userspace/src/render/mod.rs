//! Output. Renderers turn decoded events and snapshot rows into text or JSON;
//! they know nothing about BPF or /proc.

pub mod event_json;
pub mod event_text;
pub mod groups;
pub mod interfaces;
pub mod live_diff;
pub mod masquerade;
pub mod metrics;
pub mod routes;
pub mod sockets;
pub mod statistics;
mod statistics_tables;
pub mod stop;
pub mod summary;

use crate::decoder::NetEvent;

/// netstat's protocol column: `tcp` or `tcp6`.
pub fn tcp_proto(ev: &NetEvent) -> &'static str {
    if ev.ipv6 { "tcp6" } else { "tcp" }
}

/// Pads the column that started at `start` to `width` and adds the separating
/// space, as `printf("%-*s ")` does (a longer value pushes the line right).
pub fn pad_column(out: &mut String, start: usize, width: usize) {
    let used = out[start..].chars().count();
    for _ in used..width {
        out.push(' ');
    }
    out.push(' ');
}

/// Nanoseconds shown as milliseconds with three decimals (`12.345`), in
/// integer arithmetic: float formatting is a visible cost in a storm.
pub struct Millis(pub u64);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::io::Write as _;
        let micros = self.0 / 1000;
        // Formatted on the stack so that padding (`{:>8}`) needs no allocation.
        let mut buf = [0u8; 32];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        let _ = write!(cursor, "{}.{:03}", micros / 1000, micros % 1000);
        let len = cursor.position() as usize;
        f.pad(std::str::from_utf8(&buf[..len]).unwrap_or("?"))
    }
}
