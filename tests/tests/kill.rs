//! `kill -9` of enetstat at any stage leaves no program behind: the kernel
//! frees programs, maps and links when their last file closes, and
//! enetstat pins nothing. Alone in its binary: it counts every program of
//! ours on the machine.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use netstat_common::{DROP_PROGRAM, RESET_FUNCTIONS, TRACEPOINTS};
use tests::{Netns, enetstat_bin, wait_limit};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// Programs being verified, none attached.
    Load,
    /// Some programs attached, not all.
    Attach,
    /// Tracing: the start-up line printed.
    Streaming,
}

/// Program and link files `pid` holds (from /proc/PID/fdinfo).
fn bpf_files(pid: u32) -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return (0, 0);
    };
    let mut found = (0, 0);
    for entry in dir.flatten() {
        let info = std::fs::read_to_string(entry.path()).unwrap_or_default();
        found.0 += usize::from(info.contains("\nprog_type:"));
        found.1 += usize::from(info.contains("\nlink_type:"));
    }
    found
}

/// Programs of ours loaded anywhere on the machine, by name (the kernel
/// keeps 15 characters of a name).
fn ours_loaded() -> Vec<String> {
    let ours: Vec<&str> = TRACEPOINTS
        .iter()
        .flat_map(|t| [t.name, t.second])
        .chain(RESET_FUNCTIONS.iter().copied())
        .chain([DROP_PROGRAM])
        .collect();
    let listing: serde_json::Value =
        serde_json::from_str(&tests::sh("bpftool", &["-j", "prog", "list"])).unwrap();
    listing
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .filter(|name| {
            ours.iter()
                .any(|o| o.get(..15).unwrap_or(o) == name.get(..15).unwrap_or(name))
        })
        .map(String::from)
        .collect()
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// Starts `enetstat -E` in `ns`, stops it (SIGSTOP) as soon as it seems to
/// be in `stage`, and says whether, stopped, it really is.
fn catch_in(ns: &Netns, stage: Stage) -> (Child, bool) {
    let mut cmd = ns.command(enetstat_bin());
    cmd.args(["-E", "-n", "--stop-json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("enetstat");
    let stderr = child.stderr.take().unwrap();
    let (lines, said) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let tracing = || said.try_iter().any(|l: String| tests::ready(&l));
    let pid = child.id();
    let all_links = TRACEPOINTS.len() * 2;
    let deadline = Instant::now() + wait_limit();
    let mut began = false;
    while Instant::now() < deadline {
        let (programs, links) = bpf_files(pid);
        let now_in = match stage {
            Stage::Load => programs > 0 && links == 0,
            Stage::Attach => links > 0,
            Stage::Streaming => tracing(),
        };
        if now_in {
            began = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    assert!(began, "enetstat never reached {stage:?}");
    signal(&child, libc::SIGSTOP);
    let (programs, links) = bpf_files(pid);
    let confirmed = match stage {
        Stage::Load => programs > 0 && links == 0,
        Stage::Attach => links > 0 && links < all_links,
        Stage::Streaming => true,
    };
    (child, confirmed)
}

/// Our programs still loaded once the kernel has had `wait_limit()` to free
/// those of exited processes.
fn freed_in_time() -> Vec<String> {
    let deadline = Instant::now() + wait_limit();
    let mut left = ours_loaded();
    while !left.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        left = ours_loaded();
    }
    left
}

#[test]
fn kill_9_at_load_attach_or_streaming_leaves_no_program() {
    let ns = Netns::new("kill");
    // The previous test binary's tracers may still be being freed: the
    // kernel frees programs after their process's files close.
    assert_eq!(freed_in_time(), Vec::<String>::new(), "before the test");
    for stage in [Stage::Load, Stage::Attach, Stage::Streaming] {
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut child, caught) = catch_in(&ns, stage);
            signal(&child, libc::SIGKILL);
            child.wait().unwrap();
            let left = freed_in_time();
            assert_eq!(left, Vec::<String>::new(), "after kill -9 in {stage:?}");
            if caught {
                break;
            }
            // Attaching takes milliseconds: the next start may be caught in it.
            assert!(tries < 30, "enetstat was never stopped while in {stage:?}");
        }
    }
}
