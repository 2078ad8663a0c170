//! What any local process can do to the root user running enetstat: name
//! itself with terminal escapes or bytes that are not UTF-8. Every text
//! output must show such names without a raw control character, keeping
//! their valid part; JSON must carry them exactly.

use std::{
    ffi::OsStr,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use serde_json::Value;
use tests::{Netns, Proc, Tracer, enetstat_bin, tcpload_bin};

/// Clears the screen and turns the text red, then a word to find.
const ESCAPES: &[u8] = b"\x1b[2J\x1b[31mEVIL";
/// Ends in the first two bytes of a three-byte character (a euro sign).
const CUT_UTF8: &[u8] = b"ok\xe2\x82";

/// A link to tcpload named `name`: run through it, the process's name in
/// the kernel (comm) and its argv[0] are `name`.
fn tcpload_named(dir: &Path, name: &[u8]) -> PathBuf {
    let link = dir.join(OsStr::from_bytes(name));
    std::os::unix::fs::symlink(tcpload_bin(), &link).unwrap();
    link
}

/// Panics if `text` (what `what` printed) holds a control byte other than
/// the newline.
fn assert_no_control_bytes(what: &str, text: &str) {
    let bad: Vec<(usize, u8)> = text
        .bytes()
        .enumerate()
        .filter(|&(_, b)| (b < 0x20 && b != b'\n') || b == 0x7f)
        .take(5)
        .collect();
    assert!(bad.is_empty(), "{what}: control bytes {bad:?} in\n{text}");
}

#[test]
fn hostile_program_names_reach_no_terminal_raw() {
    let ns = Netns::new("hostile");
    let dir = tempdir();
    // A listener that never accepts: each connect completes into its queue.
    let mut listener = tests::listen(&ns, "127.0.0.1:8000", 128);
    let log = Tracer::start(&ns, &["-E", "-n"]);
    let json = Tracer::start(&ns, &["-E", "-n", "--json"]);
    let view = Tracer::start_live(&ns, &["-tanp", "--interval", "100"]);
    let clients: Vec<Proc> = [ESCAPES, CUT_UTF8]
        .into_iter()
        .map(|name| {
            let mut cmd = ns.command(tcpload_named(&dir.0, name));
            cmd.args(["connect", "--to", "127.0.0.1:8000"]);
            let mut client = Proc::spawn(cmd);
            client.expect("connected");
            client
        })
        .collect();
    let listing = ns.exec_ok(&[enetstat_bin().to_str().unwrap(), "-tanp"]);
    // The names as the event log and the live view show them: controls as
    // dots, each invalid byte as U+FFFD (the PID/Program column may cut the
    // end of the first).
    let (escapes, cut) = (".[2J.[31mE", "ok\u{fffd}\u{fffd}");
    view.wait_for_line("the second client's row", |l| l.contains(cut));
    for mut client in clients {
        client.close();
    }
    listener.close();
    log.wait_quiet();
    json.wait_quiet();
    let view = view.stop();
    let (log, json) = (log.stop(), json.stop());

    // The listing shows argv[0] as netstat does: each byte outside
    // printable ASCII a dot.
    assert_no_control_bytes("enetstat -tanp", &listing);
    assert!(listing.contains("/.[2J.[31mE"), "{listing}");
    assert!(listing.contains("/ok.."), "{listing}");
    for (what, text) in [("enetstat -E", &log.stdout), ("enetstat -c", &view.stdout)] {
        assert_no_control_bytes(what, text);
        assert!(text.contains(escapes), "{what}:\n{text}");
        assert!(text.contains(cut), "{what}:\n{text}");
    }
    // JSON: the exact names, the invalid bytes as U+FFFD.
    let names: Vec<Value> = json
        .events()
        .into_iter()
        .filter(|e| e["old_state"] == "CLOSE" && e["new_state"] == "SYN_SENT")
        .map(|e| e["program"].clone())
        .collect();
    assert_eq!(
        names,
        vec![
            Value::from(String::from_utf8_lossy(ESCAPES).into_owned()),
            Value::from(cut)
        ],
        "{}",
        json.stdout
    );
}

/// A directory removed at the end of the test, even when it fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("enetstat-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}
