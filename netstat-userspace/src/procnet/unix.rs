//! /proc/net/unix: one unix domain socket per line.

use super::{ParseError, Source, hex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    pub refcnt: u64,
    pub protocol: u64,
    /// __SO_ACCEPTCON (1 << 16) marks a listening socket.
    pub flags: u64,
    /// SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_SEQPACKET = 5 ...
    pub kind: u32,
    /// SS_UNCONNECTED = 1, SS_CONNECTING, SS_CONNECTED, SS_DISCONNECTING.
    pub state: u32,
    pub inode: u64,
    /// The bound name as the kernel prints it (`@` for abstract names); netstat
    /// shows it up to the first blank.
    pub path: Option<String>,
}

/// __SO_ACCEPTCON: the unix socket is listening.
pub const ACCEPTING: u64 = 1 << 16;

impl UnixSocket {
    /// A listening socket: unconnected, accepting connections.
    pub fn listening(&self) -> bool {
        self.state == 1 && self.flags & ACCEPTING != 0
    }
}

pub fn parse(text: &str, file: &str) -> Result<Vec<UnixSocket>, ParseError> {
    let src = Source { file };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, header)) if header.contains("Inode") => {}
        Some(_) => return Err(src.error(0, "column header without Inode (kernel older than 2.2?)")),
        None => return Err(src.error(0, "empty file, expected a column header")),
    }
    lines
        .map(|(i, line)| parse_line(line).map_err(|why| src.error(i, why)))
        .collect()
}

fn parse_line(line: &str) -> Result<UnixSocket, String> {
    let mut f = line.split_ascii_whitespace();
    let mut next = |what: &str| {
        f.next()
            .ok_or_else(|| format!("line ends before the {what} column"))
    };
    let num = next("Num")?;
    if !num.ends_with(':') {
        return Err(format!(
            "expected `ADDRESS:` in the Num column, found {num:?}"
        ));
    }
    let refcnt = field(next("RefCount")?, "RefCount")?;
    let protocol = field(next("Protocol")?, "Protocol")?;
    let flags = field(next("Flags")?, "Flags")?;
    let kind = field(next("Type")?, "Type")?;
    let state = field(next("St")?, "St")?;
    let inode_field = next("Inode")?;
    let inode = inode_field
        .parse()
        .map_err(|_| format!("bad Inode column {inode_field:?}"))?;
    let path = f.next().map(str::to_string);
    Ok(UnixSocket {
        refcnt,
        protocol,
        flags,
        kind,
        state,
        inode,
        path,
    })
}

fn field<T: TryFrom<u64>>(v: &str, what: &str) -> Result<T, String> {
    hex(v).ok_or_else(|| format!("bad {what} column {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Num       RefCount Protocol Flags    Type St Inode Path\n";

    #[test]
    fn reads_named_abstract_and_unnamed_sockets() {
        let text = format!(
            "{HEADER}0000000000000000: 00000002 00000000 00010000 0001 01 111 /run/a.sock\n0000000000000000: 00000003 00000000 00000000 0005 03 222 @abs\n0000000000000000: 00000002 00000000 00000000 0002 01 333\n"
        );
        let s = parse(&text, "/proc/net/unix").unwrap();
        assert_eq!(s[0].flags, 1 << 16);
        assert_eq!(s[0].path.as_deref(), Some("/run/a.sock"));
        assert_eq!((s[1].kind, s[1].state, s[1].refcnt), (5, 3, 3));
        assert_eq!(s[1].path.as_deref(), Some("@abs"));
        assert_eq!((s[2].inode, s[2].path.clone()), (333, None));
    }

    #[test]
    fn broken_input_is_an_error_with_its_line() {
        let cut = format!("{HEADER}0000000000000000: 00000002 00000000 00010000 0001\n");
        assert_eq!(
            parse(&cut, "/proc/net/unix").unwrap_err().to_string(),
            "/proc/net/unix line 2: line ends before the St column"
        );
        let bad = format!("{HEADER}0000000000000000: 0000000Z 00000000 00010000 0001 01 1\n");
        assert_eq!(parse(&bad, "/proc/net/unix").unwrap_err().line, 2);
        assert_eq!(parse("", "/proc/net/unix").unwrap_err().line, 1);
        assert_eq!(
            parse("Num RefCount\n", "/proc/net/unix").unwrap_err().line,
            1
        );
    }
}
