//! `-c --diff`: one line per row that appeared (+), changed state (~) or
//! vanished (-) between two drawings of the live view, compared as rows.

use std::{collections::BTreeMap, net::SocketAddr};

use crate::{
    names::Names,
    render::sockets::{self, InetProto, InetRow},
};

/// A row of a drawing, by what identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey {
    pub proto: InetProto,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// A drawing's Internet rows and their states.
pub type Rows = BTreeMap<RowKey, u8>;

pub fn add(rows: &mut Rows, row: &InetRow) {
    let key = RowKey {
        proto: row.proto,
        local: row.socket.local,
        remote: row.socket.remote,
    };
    rows.insert(key, row.socket.state);
}

/// The lines telling `previous` from `current`, each stamped `time`.
pub fn changes(previous: &Rows, current: &Rows, time: &str, names: &Names, out: &mut String) {
    for (key, &state) in current {
        match previous.get(key) {
            None => line(out, time, '+', names, key, None, state),
            Some(&old) if old != state => line(out, time, '~', names, key, Some(old), state),
            Some(_) => {}
        }
    }
    for (key, &state) in previous {
        if !current.contains_key(key) {
            line(out, time, '-', names, key, None, state);
        }
    }
}

fn line(
    out: &mut String,
    time: &str,
    sign: char,
    names: &Names,
    key: &RowKey,
    old: Option<u8>,
    state: u8,
) {
    out.push_str(time);
    out.push(' ');
    out.push(sign);
    out.push(' ');
    out.push_str(key.proto.column(key.local.is_ipv6()));
    for addr in [key.local, key.remote] {
        out.push(' ');
        names.write_host(out, addr.ip());
        out.push(':');
        names.write_port(out, addr.port(), key.proto.services());
    }
    out.push(' ');
    if let Some(old) = old {
        sockets::state(out, key.proto, old);
        out.push_str(" -> ");
    }
    sockets::state(out, key.proto, state);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procnet::sockets::InetSocket;

    fn rows(list: &[(InetProto, &str, &str, u8)]) -> Rows {
        let mut rows = Rows::new();
        for &(proto, local, remote, state) in list {
            let socket =
                InetSocket::from_endpoints(local.parse().unwrap(), remote.parse().unwrap(), state);
            let row = InetRow {
                proto,
                socket: &socket,
                owner: None,
                in_state: None,
                netns: None,
            };
            add(&mut rows, &row);
        }
        rows
    }

    #[test]
    fn diff_lists_appeared_changed_and_vanished_rows() {
        use InetProto::{Tcp, Udp};
        let before = rows(&[
            (Tcp, "127.0.0.1:80", "0.0.0.0:0", 10),
            (Tcp, "127.0.0.1:80", "127.0.0.1:5000", 1),
            (Udp, "0.0.0.0:68", "0.0.0.0:0", 7),
        ]);
        let after = rows(&[
            (Tcp, "127.0.0.1:80", "0.0.0.0:0", 10),
            (Tcp, "127.0.0.1:80", "127.0.0.1:5000", 4),
            (Tcp, "127.0.0.1:80", "127.0.0.1:5002", 3),
        ]);
        let mut out = String::new();
        changes(
            &before,
            &after,
            "T",
            &Names::new(crate::names::Numeric {
                hosts: true,
                ports: true,
                users: true,
            }),
            &mut out,
        );
        assert_eq!(
            out,
            "T ~ tcp 127.0.0.1:80 127.0.0.1:5000 ESTABLISHED -> FIN_WAIT1\n\
             T + tcp 127.0.0.1:80 127.0.0.1:5002 SYN_RECV\n\
             T - udp 0.0.0.0:68 0.0.0.0:* \n"
        );
    }
}
