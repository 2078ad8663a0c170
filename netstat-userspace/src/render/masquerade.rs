//! `netstat -M`: masqueraded connections, in netstat's layout, from the
//! conntrack entries whose source was rewritten.

use std::fmt::Write as _;

use crate::{names::Names, procnet::conntrack::Tracked};

pub fn header(out: &mut String) {
    out.push_str(
        "IP masquerading entries\nprot   expire source               destination          ports\n",
    );
}

/// `tcp   119:59.00 10.0.0.2             example.org          40000 -> http (61000)`:
/// time left as minutes:seconds.hundredths, the masquerade port in parentheses.
pub fn row(out: &mut String, names: &Names, t: &Tracked) {
    let (minutes, seconds) = (t.expires / 60, t.expires % 60);
    let _ = write!(out, "{:<4}{minutes:>3}:{seconds:02}.00 ", t.protocol);
    for ip in [t.source.ip(), t.destination.ip()] {
        let start = out.len();
        names.write_host(out, ip);
        let used = out.len() - start;
        out.extend(std::iter::repeat_n(' ', 20usize.saturating_sub(used)));
        out.push(' ');
    }
    names.write_port(out, t.source.port(), &t.protocol);
    out.push_str(" -> ");
    names.write_port(out, t.destination.port(), &t.protocol);
    out.push_str(" (");
    names.write_port(out, t.reply_destination.port(), &t.protocol);
    out.push_str(")\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Numeric;

    #[test]
    fn row_layout() {
        let names = Names::new(Numeric {
            hosts: true,
            ports: true,
            users: true,
        });
        let t = Tracked {
            protocol: "tcp".into(),
            expires: 7199,
            source: "10.0.0.2:40000".parse().unwrap(),
            destination: "93.184.216.34:80".parse().unwrap(),
            reply_destination: "192.0.2.1:61000".parse().unwrap(),
        };
        let mut out = String::new();
        row(&mut out, &names, &t);
        assert_eq!(
            out,
            "tcp 119:59.00 10.0.0.2             93.184.216.34        40000 -> 80 (61000)\n"
        );
    }
}
