//! Every parser of outside input, on arbitrary bytes: the entry points of
//! the fuzz targets (netstat-userspace/fuzz, run by `cargo xtask fuzz`). A
//! panic, a hang or an allocation past libFuzzer's limits is the finding;
//! what the parsers return is dropped. Host names and users come from
//! glibc's resolver, not from a parser of ours.

use crate::{kernel::btf, log_file, names::Services, procnet, sock_diag, textfmt::lossy_utf8};

/// A /proc/net file, decoded as `procnet::read` decodes it; the first byte
/// picks the parser.
pub fn proc_net(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (text, file) = (lossy_utf8(rest), "/proc/net/fuzz");
    match which % 11 {
        0 => drop(procnet::sockets::parse(&text, file)),
        1 => drop(procnet::unix::parse(&text, file)),
        2 => drop(procnet::routes::parse_v4(&text, file)),
        3 => drop(procnet::routes::parse_v6(&text, file)),
        4 => drop(procnet::snmp::parse_tables(&text, file)),
        5 => drop(procnet::snmp::parse_pairs(&text, file)),
        6 => drop(procnet::igmp::parse_v4(&text, file)),
        7 => drop(procnet::igmp::parse_v6(&text, file)),
        8 => drop(procnet::dev::parse(&text, file)),
        9 => drop(procnet::if_inet6::parse(&text, file)),
        _ => drop(procnet::conntrack::parse(&text, file)),
    }
}

/// One read of a sock_diag socket: as socket records and as listeners'.
pub fn sock_diag(data: &[u8]) {
    let _ = sock_diag::parse_batch(data, &mut Vec::new(), sock_diag::record);
    let _ = sock_diag::parse_batch(data, &mut Vec::new(), sock_diag::listener);
}

/// /etc/services and /etc/protocols (the input split at its first NUL).
pub fn services(data: &[u8]) {
    let text = lossy_utf8(data);
    let (services, protocols) = text.split_once('\0').unwrap_or((&text, ""));
    drop(Services::parse(services, protocols));
}

/// A kernel's BTF, and every question enetstat asks of it.
pub fn btf(data: &[u8]) {
    let Ok(btf) = btf_rs::Btf::from_bytes(data) else {
        return;
    };
    let _ = btf::require_facilities(&btf);
    let _ = btf::kernel_offsets(&btf);
    let _ = btf::reset_reasons(&btf);
    let _ = btf::drop_reasons(&btf);
    let _ = btf::send_reset_covers_all_sockets(&btf);
    let _ = btf::tracepoint_args(&btf, "tcp_send_reset");
}

/// A line of an event log, as `--replay` reads it.
pub fn log_record(data: &[u8]) {
    drop(log_file::parse(&lossy_utf8(data)));
}
