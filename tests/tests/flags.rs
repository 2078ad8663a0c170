//! Every combination of modes, and the listing flags with `--json`,
//! `--diff`, `--count` and the filters: each either works (its output
//! checked) or is refused in one line with exit 2, never ignored.

use std::process::Output;

use tests::{Netns, enetstat_bin};

/// What a combination must do.
enum Want {
    /// Exit 2 with one stderr line containing this.
    Refused(&'static str),
    /// Exit 0, with this check of stdout.
    Works(fn(&str) -> bool),
}

use Want::{Refused, Works};

fn run_in(ns: &Netns, args: &[&str]) -> Output {
    ns.command(enetstat_bin())
        .args(args)
        .output()
        .expect("run enetstat")
}

fn check(ns: &Netns, args: &[&str], want: &Want) {
    let out = run_in(ns, args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    match want {
        Refused(needle) => {
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert_eq!(lines.len(), 1, "{args:?}: one line, got {stderr}");
            assert!(
                lines[0].starts_with("enetstat: ") && lines[0].contains(needle),
                "{args:?}: want {needle:?} in {stderr}"
            );
            assert!(stdout.is_empty(), "{args:?}: {stdout}");
        }
        Works(ok) => {
            assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
            assert!(ok(&stdout), "{args:?}: unexpected output\n{stdout}");
        }
    }
}

/// Every line a JSON object (none: a quiet namespace).
fn json_lines(out: &str) -> bool {
    out.lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
}

/// Modes two at a time, and each event mode with what it cannot follow.
#[test]
fn modes_together_work_or_are_refused() {
    let ns = Netns::new("flag-modes");
    let two_modes = "each run a mode of their own";
    let tcp_only = "follows TCP only";
    let cases: &[(&[&str], Want)] = &[
        (&["-E", "-S"], Refused(two_modes)),
        (&["-E", "-c"], Refused(two_modes)),
        (&["-c", "-E"], Refused(two_modes)),
        (&["-S", "-c", "-t"], Refused(two_modes)),
        // --metrics goes beside any one mode.
        (
            &["-E", "--metrics", "127.0.0.1:9981", "--duration", "0.3"],
            Works(|_| true),
        ),
        (
            &[
                "-S",
                "0.1",
                "--count",
                "2",
                "--json",
                "--metrics",
                "127.0.0.1:9982",
            ],
            Works(|out| out.lines().count() == 2),
        ),
        (
            &["-S", "0.1", "--count", "3", "--json"],
            Works(|out| out.lines().count() == 3 && out.lines().all(|l| l.starts_with('{'))),
        ),
        (&["-E", "-u"], Refused(tcp_only)),
        (&["-E", "-x"], Refused(tcp_only)),
        (&["-E", "-r"], Refused(tcp_only)),
        (&["-E", "-A", "unix"], Refused(tcp_only)),
        (&["-S", "-w"], Refused(tcp_only)),
        (&["-S", "-s"], Refused(tcp_only)),
        (&["--metrics", "-i"], Refused(tcp_only)),
        (&["--metrics", "-g"], Refused(tcp_only)),
        (
            &["-c", "-u", "--metrics"],
            Refused("needs the TCP live view"),
        ),
        (&["-r", "-i"], Refused("each select a listing")),
        (&["-s", "-r"], Refused("each select a listing")),
        (&["-i", "-M"], Refused("each select a listing")),
        (&["-g", "-r"], Refused("each select a listing")),
        (&["-r", "-t"], Refused("-r lists no sockets")),
        (&["-c", "-s"], Refused("-s prints its counters once")),
        (&["-E", "-p"], Refused("-p shapes the listing")),
        (&["--metrics", "-tan"], Refused("-a shapes the listing")),
        (&["-A", "foo"], Refused("unknown address family `foo'")),
        (&["-E", "--json", "--duration", "0.3"], Works(json_lines)),
    ];
    for (args, want) in cases {
        check(&ns, args, want);
    }
}

/// The listing's flags with the options that belong to other modes.
#[test]
fn listing_flags_with_other_modes_options() {
    let ns = Netns::new("flag-listing");
    let cases: &[(&[&str], Want)] = &[
        (&["-tan", "--json"], Refused("--json goes with -E or -S")),
        (
            &["-c", "-tanp", "--json"],
            Refused("--json goes with -E or -S"),
        ),
        (&["-tan", "--stop-json"], Refused("--stop-json goes with")),
        (&["-tan", "--diff"], Refused("--diff goes with -c")),
        (&["-tan", "--count", "1"], Refused("--count goes with -E")),
        (
            &["-c", "-tan", "--count", "1"],
            Refused("--count goes with -E"),
        ),
        (
            &["--metrics", "--count", "1"],
            Refused("--count goes with -E"),
        ),
        (&["-E", "--count", "0"], Refused("invalid --count 0")),
        (
            &["-tan", "--duration", "1"],
            Refused("--duration goes with"),
        ),
        (
            &["-S", "--ring-size", "4096"],
            Refused("--ring-size goes with -E or -c"),
        ),
        (
            &["-tan", "--ring-size", "4096"],
            Refused("--ring-size goes with -E or -c"),
        ),
        (
            &["-r", "--netns", "all"],
            Refused("shows one network namespace"),
        ),
        (
            &["-i", "--netns", "all"],
            Refused("shows one network namespace"),
        ),
        (
            &["-s", "--netns", "all"],
            Refused("shows one network namespace"),
        ),
        (
            &["-xa", "--netns", "all"],
            Refused("shows one network namespace"),
        ),
        (
            &["-xan", "--port", "80"],
            Refused("--port has no meaning for unix sockets"),
        ),
        (
            &["-xan", "--addr", "127.0.0.1"],
            Refused("--addr has no meaning"),
        ),
        (
            &["-c", "-tan", "--diff", "--duration", "0.5"],
            Works(|out| out.lines().all(|l| l.contains(" + ") || l.contains(" - "))),
        ),
        (
            &["-tan", "--netns", "all"],
            Works(|out| out.contains("Netns")),
        ),
        (
            &["-tan", "--state", "LISTEN"],
            Works(|out| out.lines().skip(2).all(|l| l.ends_with("LISTEN"))),
        ),
    ];
    for (args, want) in cases {
        check(&ns, args, want);
    }
}

/// The options of `-S`'s owner lists go with the modes that count owners.
#[test]
fn owner_and_leak_options_go_with_their_modes() {
    let ns = Netns::new("flag-owners");
    let cases: &[(&[&str], Want)] = &[
        (
            &["-r", "--cgroup", "/"],
            Refused("--cgroup selects sockets"),
        ),
        (
            &["-tan", "--cgroup", "system.slice"],
            Refused("--cgroup system.slice: paths start at the cgroup v2 root"),
        ),
        // Every owner is in the root cgroup or below it.
        (
            &["-tanp", "--cgroup", "/"],
            Works(|out| out.contains("Proto")),
        ),
        (
            &["-S", "1", "--cgroup", "/enetstat-no-such-cgroup"],
            Refused("--cgroup /enetstat-no-such-cgroup: "),
        ),
        (
            &["-tan", "--close-wait-age", "5"],
            Refused("--close-wait-age goes with -S"),
        ),
    ];
    for (args, want) in cases {
        check(&ns, args, want);
    }
}

/// `--pid` and `--state` select unix sockets as they select TCP ones
/// (unix sockets are listed from the test's own namespace: it holds them).
#[test]
fn filters_select_unix_sockets() {
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = std::env::temp_dir().join(format!("flag-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("listener");
    let listener = UnixListener::bind(&path).expect("bind");
    let _client = UnixStream::connect(&path).expect("connect");
    let _server = listener.accept().expect("accept");
    let pid = std::process::id().to_string();
    let rows = |args: &[&str]| -> Vec<String> {
        let out = std::process::Command::new(enetstat_bin())
            .args(args)
            .output()
            .expect("run enetstat");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("unix "))
            .map(str::to_string)
            .collect()
    };
    // Our three sockets (listener, both ends), and nothing else.
    let owned = rows(&["-xanp", "--pid", &pid]);
    assert_eq!(owned.len(), 3, "{owned:?}");
    assert!(
        owned.iter().all(|l| l.contains(&format!("{pid}/"))),
        "{owned:?}"
    );
    let listening = rows(&["-xanp", "--pid", &pid, "--state", "LISTEN"]);
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert!(
        listening[0].contains("LISTENING") && listening[0].ends_with(path.to_str().unwrap()),
        "{listening:?}"
    );
    let connected = rows(&["-xanp", "--pid", &pid, "--state", "ESTABLISHED"]);
    assert_eq!(connected.len(), 2, "{connected:?}");
    assert!(
        connected.iter().all(|l| l.contains("CONNECTED")),
        "{connected:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-v` says what netstat's `-v` says of the families enetstat does not
/// list: the same line where this kernel has none.
#[test]
fn verbose_names_the_families_not_listed_as_netstat_does() {
    let ns = Netns::new("flag-verbose");
    let stderr_lines = |program: &str| -> Vec<String> {
        let out = ns.command(program).arg("-v").output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{program}");
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(|l| l.split_once(": ").map_or(l, |(_, rest)| rest).to_string())
            .collect()
    };
    let netstat = stderr_lines("netstat");
    assert!(!netstat.is_empty());
    assert_eq!(stderr_lines(enetstat_bin().to_str().unwrap()), netstat);
}

/// Every pair of modes (the three event modes, --metrics, each listing):
/// refused in one line with exit 2, or run to a normal end (exit 0);
/// which, by the rules the README states.
#[test]
fn every_pair_of_modes_works_or_is_refused() {
    let ns = Netns::new("flag-pairs");
    let modes: [(&str, &[&str]); 10] = [
        ("-E", &["-E"]),
        ("-S", &["-S", "0.2"]),
        ("-c", &["-c", "-tn"]),
        ("--metrics", &["--metrics", "127.0.0.1:9983"]),
        ("-r", &["-r"]),
        ("-i", &["-i"]),
        ("-s", &["-s"]),
        ("-g", &["-g"]),
        ("-M", &["-M"]),
        ("sockets", &["-a"]),
    ];
    let conntrack = std::path::Path::new("/proc/net/nf_conntrack").exists();
    let event = |m: &str| ["-E", "-S", "-c"].contains(&m);
    let tracing = |m: &str| ["-E", "-S", "--metrics"].contains(&m);
    let listing = |m: &str| ["-r", "-i", "-s", "-g", "-M"].contains(&m);
    for (i, (a, a_args)) in modes.iter().enumerate() {
        for (b, b_args) in &modes[i + 1..] {
            let (a, b) = (*a, *b);
            let refused = (event(a) && event(b))
                // -t and -n go with the event modes; -a -l -p -e -o -W do not.
                || (tracing(a) && (listing(b) || b == "sockets"))
                || (listing(a) && listing(b))
                // -c -s prints once; -c's -t lists no sockets of -r -i -g -M.
                || (a == "-c" && listing(b));
            let mut args: Vec<&str> = a_args.iter().chain(b_args.iter()).copied().collect();
            if event(a) || event(b) || tracing(a) || tracing(b) {
                args.extend(["--duration", "0.5"]);
            }
            let out = run_in(&ns, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            if refused {
                assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
                assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
            } else if [a, b].contains(&"-M") && !conntrack {
                // A kernel without conntrack: netstat's own exit 1.
                assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
                assert!(stderr.contains("ip_masquerade"), "{args:?}: {stderr}");
            } else {
                assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
            }
        }
    }
}

/// Every numeric option with values no run can use (negative, NaN,
/// infinite, zero where it means nothing, too large): one stderr line, exit
/// 2, no backtrace, before anything is loaded.
#[test]
fn every_numeric_option_refuses_values_it_cannot_use() {
    let ns = Netns::new("flag-values");
    let cases: &[&[&str]] = &[
        &["-E", "--duration", "nan"],
        &["-E", "--duration", "inf"],
        &["-E", "--duration", "1e30"],
        &["-E", "--duration", "0"],
        &["-E", "--duration=-1"],
        &["-E", "--duration", "1e-9"],
        &["-S", "nan"],
        &["-S", "0"],
        &["-S", "1e30"],
        &["-S", "0.01"],
        &["-S", "1", "--close-wait-age", "nan"],
        &["-S", "1", "--close-wait-age=-1"],
        &["-S", "1", "--close-wait-age", "1e30"],
        &["-E", "--count", "0"],
        &["-E", "--count=-1"],
        &["-E", "--count", "1e3"],
        &["-E", "--count", "18446744073709551616"],
        &["-c", "-tn", "--interval=-1"],
        &["-c", "-tn", "--interval", "nan"],
        &["-c", "-tn", "--interval", "18446744073709551615"],
        &["-E", "--ring-size", "0"],
        &["-E", "--ring-size", "5000"],
        &["-E", "--ring-size", "2048"],
        &["-E", "--ring-size", "4294967296"],
        &["-E", "--max-sockets", "0"],
        &["-E", "--max-sockets", "4294967295"],
        &["-E", "--max-sockets=-5"],
        &["-E", "--pid", "0"],
        &["-E", "--pid", "4294967295"],
        &["-E", "--pid=-1"],
        &["-E", "--port", "0"],
        &["-E", "--port", "65536"],
        &["-E", "--sport=-1"],
        &["-E", "--dport", "nan"],
        &["--metrics", ":99999"],
        &["--metrics", "not-an-address"],
        &["--metrics", "1.2.3.4"],
    ];
    for args in cases {
        let out = run_in(&ns, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("enetstat: ") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
