//! Golden tests: the real net-tools `netstat` and `enetstat` run with the
//! same flags in a namespace holding one socket of every kind, and must
//! print the same lines.

use std::{process::Output, thread, time::Duration};

use tests::{Netns, Proc, enetstat_bin, sockholder_bin};

const LONG_V6: &str = "fd00:99::1234:5678:9abc:def0";

/// A namespace with a veth pair, addresses, a route, and the socket holders.
struct Fixture {
    ns: Netns,
    dir: std::path::PathBuf,
    _server: Proc,
    _client: Proc,
}

impl Fixture {
    fn new(tag: &str) -> Self {
        let ns = Netns::new(tag);
        for cmd in [
            "ip link add v0 type veth peer name v1",
            "ip addr add 10.99.0.1/24 dev v0",
            "ip -6 addr add fd00:99::1/64 dev v0 nodad",
            &format!("ip -6 addr add {LONG_V6}/64 dev v0 nodad"),
            "ip link set v0 up",
            "ip link set v1 up",
            "ip route add 192.168.99.0/24 via 10.99.0.2",
        ] {
            ns.exec_ok(&cmd.split_whitespace().collect::<Vec<_>>());
        }
        let dir = std::env::temp_dir().join(&ns.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("socket dir");
        let long = format!("[{LONG_V6}]:5000");
        let holder = |role: &str| {
            let mut cmd = ns.command(sockholder_bin());
            cmd.args([role, "--dir"])
                .arg(&dir)
                .args(["--long-v6", &long]);
            let mut p = Proc::spawn(cmd);
            p.expect("ready");
            p
        };
        let server = holder("server");
        let client = holder("client");
        Self {
            ns,
            dir,
            _server: server,
            _client: client,
        }
    }

    fn run(&self, program: &str, flags: &[&str], as_nobody: bool) -> Output {
        let mut cmd = if as_nobody {
            let mut c = self.ns.command("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", program]);
            c
        } else {
            self.ns.command(program)
        };
        cmd.args(flags).output().expect("run listing")
    }

    /// Runs netstat, enetstat, netstat: enetstat must match one of the two
    /// netstat runs (stdout, stderr and exit code). A kernel-side change
    /// between the reads (an accept, an MLD report) shows as the two netstat
    /// runs differing; then the comparison is repeated, a bounded number of
    /// times.
    fn compare(&self, flags: &[&str], must_contain: &str, as_nobody: bool) {
        let enetstat = enetstat_bin();
        let enetstat = enetstat.to_str().expect("utf-8 path");
        let show = |o: &Output| {
            format!(
                "exit {:?}\n--- stdout\n{}--- stderr\n{}",
                o.status.code(),
                normalise(flags, &String::from_utf8_lossy(&o.stdout)),
                String::from_utf8_lossy(&o.stderr).replace("enetstat: ", "netstat: ")
            )
        };
        for _ in 0..5 {
            let before = show(&self.run("netstat", flags, as_nobody));
            let ours = show(&self.run(enetstat, flags, as_nobody));
            let after = show(&self.run("netstat", flags, as_nobody));
            assert!(
                before.contains(must_contain),
                "netstat {flags:?} lacks {must_contain:?}:\n{before}"
            );
            if ours == before || ours == after {
                return;
            }
            assert_ne!(
                before,
                after,
                "enetstat {flags:?} differs from netstat:\n{}",
                diff(&before, &ours)
            );
            thread::sleep(Duration::from_millis(300));
        }
        panic!("netstat {flags:?} output kept changing; no stable comparison");
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Values that change by themselves between two reads are replaced:
/// with -o, the seconds left on a running timer (keepalive counts down).
fn normalise(flags: &[&str], text: &str) -> String {
    if !flags
        .iter()
        .any(|f| f.starts_with('-') && !f.starts_with("--") && f.contains('o'))
    {
        return text.to_string();
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find(" (") {
        out.push_str(&rest[..open + 2]);
        rest = &rest[open + 2..];
        let number = rest.find('/').map(|slash| &rest[..slash]);
        if let Some(n) =
            number.filter(|n| n.contains('.') && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
        {
            out.push('T');
            rest = &rest[n.len()..];
        }
    }
    out.push_str(rest);
    out
}

fn diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<_>, Vec<_>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (
            w.get(i).copied().unwrap_or("<none>"),
            g.get(i).copied().unwrap_or("<none>"),
        );
        if a != b {
            out.push_str(&format!(
                "line {}:\n  netstat:  {a:?}\n  enetstat: {b:?}\n",
                i + 1
            ));
        }
    }
    out
}

#[test]
fn internet_sockets_match_netstat() {
    let f = Fixture::new("snap-inet");
    f.compare(&["-tan"], "127.0.0.1:8080", false);
    f.compare(&["-tuna"], "0.0.0.0:53", false);
    f.compare(&["-atnlp"], "/sockholder", false);
    f.compare(&["-au"], "0.0.0.0:domain", false);
    f.compare(&["-tuln", "-e"], "LISTEN", false);
    f.compare(&["-tano"], "keepalive (T/0/0)", false);
    f.compare(&["-tanW"], LONG_V6, false);
    f.compare(&["-n", "-A", "inet6"], "tcp6", false);
    f.compare(&["-awn"], "raw ", false);
    f.compare(&["-tanp"], "(No info could be read for \"-p\"", true);
}

#[test]
fn unix_sockets_match_netstat() {
    let f = Fixture::new("snap-unix");
    f.compare(&["-ax"], "@enetstat-test-", false);
    f.compare(&["-lx"], "SEQPACKET", false);
    f.compare(&["-xp"], "CONNECTED", false);
}

#[test]
fn statistics_match_netstat() {
    let f = Fixture::new("snap-stats");
    f.compare(&["-s"], "active connection openings", false);
    f.compare(&["-st"], "TcpExt:", false);
    f.compare(&["-su"], "packets received", false);
    f.compare(&["-s", "-6"], "Ip6:", false);
}

#[test]
fn routes_match_netstat() {
    let f = Fixture::new("snap-route");
    f.compare(&["-rn"], "192.168.99.0", false);
    f.compare(&["-r"], "10.99.0.2", false);
    f.compare(&["-rnee"], "Metric", false);
    f.compare(&["-rn", "-A", "inet6"], "fd00:99::/64", false);
}

#[test]
fn interfaces_and_groups_match_netstat() {
    let f = Fixture::new("snap-if");
    // Down, so only -ia lists it.
    f.ns.exec_ok(&[
        "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    f.compare(&["-i"], "v0", false);
    f.compare(&["-ia"], "d0", false);
    f.compare(&["-ie"], "inet6 fd00:99::1  prefixlen 64", false);
    f.compare(&["-iae"], "d0: flags=", false);
    f.compare(&["-g"], "ff02::1", false);
}

/// What netstat refuses, enetstat refuses too, in one line and with the
/// README's usage code 2 (netstat's are 3 or 1).
#[test]
fn bad_combinations_are_refused_where_netstat_refuses_them() {
    let f = Fixture::new("snap-bad");
    for flags in [&["-r", "-i"][..], &["-A", "foo"], &["-s", "-x"]] {
        let theirs = f.run("netstat", flags, false).status.code();
        assert!(theirs.is_some_and(|c| c != 0), "{flags:?}");
        let ours = f.run(enetstat_bin().to_str().unwrap(), flags, false);
        assert_eq!(ours.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&ours.stderr);
        assert_eq!(
            err.lines().count(),
            1,
            "one-line error for {flags:?}: {err}"
        );
    }
}
