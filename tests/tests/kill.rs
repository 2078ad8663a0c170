//! `kill -9` of enetstat at any stage leaves no program behind: the kernel
//! frees programs, maps and links when their last file closes, and
//! enetstat pins nothing. Alone in its binary: it counts every program of
//! ours on the machine, and it waits for any child (ptrace).

use std::{
    io::{self, BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use netstat_common::{DROP_PROGRAM, RESET_FUNCTIONS, TRACEPOINTS};
use tests::{Netns, enetstat_bin, wait_limit};

/// bpf(2) commands (uapi/linux/bpf.h, enum bpf_cmd).
const BPF_PROG_LOAD: u64 = 5;
const BPF_RAW_TRACEPOINT_OPEN: u64 = 17;
const BPF_LINK_CREATE: u64 = 28;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// Some programs verified, none attached.
    Load,
    /// Some programs attached, not all.
    Attach,
    /// Tracing: the ready record printed.
    Streaming,
}

impl Stage {
    /// Whether a bpf(2) call of `command`, made while enetstat holds
    /// `files`, is one of the stage's: the process is held at its entry.
    fn holds_at(self, command: u64, (programs, links): (usize, usize)) -> bool {
        match self {
            Stage::Load => command == BPF_PROG_LOAD && programs > 0,
            Stage::Attach => {
                [BPF_RAW_TRACEPOINT_OPEN, BPF_LINK_CREATE].contains(&command) && links > 0
            }
            Stage::Streaming => false,
        }
    }

    /// Whether enetstat, holding `files`, is in the stage.
    fn is_in(self, (programs, links): (usize, usize)) -> bool {
        match self {
            Stage::Load => programs > 0 && links == 0,
            Stage::Attach => links > 0 && links < TRACEPOINTS.len() * 2,
            Stage::Streaming => links >= TRACEPOINTS.len() * 2,
        }
    }
}

/// Program and link files `pid` holds (from /proc/PID/fdinfo).
fn bpf_files(pid: i32) -> (usize, usize) {
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

/// The next child (any thread of a traced one) that changed state, and how.
fn wait_any() -> Option<(i32, i32)> {
    let mut status = 0;
    // SAFETY: valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
    (pid > 0).then_some((pid, status))
}

/// SIGKILLs `pid` unless the returned sender is used or dropped within
/// `wait_limit()`, so that no wait for it can hang.
fn watchdog(pid: i32) -> mpsc::Sender<()> {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        if finished.recv_timeout(wait_limit()) == Err(mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: the pid is our unreaped child, so it cannot be reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    done
}

/// The bpf(2) command thread `tid` is entering, if it is entering bpf(2).
fn bpf_command(tid: i32) -> Option<u64> {
    // SAFETY: plain data, filled by the kernel.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of_val(&info);
    // SAFETY: `tid` is a traced thread in a syscall stop; `info` has `size` bytes.
    let got = unsafe { libc::ptrace(libc::PTRACE_GET_SYSCALL_INFO, tid, size, &mut info) };
    assert!(
        got > 0,
        "PTRACE_GET_SYSCALL_INFO: {}",
        io::Error::last_os_error()
    );
    // SAFETY: `op` says the kernel filled the entry member.
    let entry = unsafe { info.u.entry };
    (info.op == libc::PTRACE_SYSCALL_INFO_ENTRY && entry.nr == libc::SYS_bpf as u64)
        .then_some(entry.args[0])
}

/// Runs `cmd` traced and holds it at the entry of the first bpf(2) call
/// of `stage`: polling /proc cannot catch the attach stage, which lasts
/// well under a millisecond. None if it exited first.
#[expect(
    clippy::zombie_processes,
    reason = "wait_any reaps it when it exits first"
)]
fn hold_in(mut cmd: Command, stage: Stage) -> Option<Child> {
    // SAFETY: ptrace(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| match libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) {
            -1 => Err(io::Error::last_os_error()),
            _ => Ok(()),
        })
    };
    let child = cmd.spawn().expect("enetstat");
    let pid = child.id() as i32;
    let _watchdog = watchdog(pid);
    wait_any().expect("the stop at exec");
    let options = libc::PTRACE_O_TRACESYSGOOD
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_EXITKILL;
    // SAFETY: `pid` is our tracee, stopped.
    unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options) };
    let mut resume = Some((pid, 0));
    loop {
        if let Some((tid, signal)) = resume {
            // SAFETY: `tid` is a thread of our tracee, stopped.
            unsafe { libc::ptrace(libc::PTRACE_SYSCALL, tid, 0, signal) };
        }
        let (tid, status) = wait_any()?;
        if !libc::WIFSTOPPED(status) {
            if tid == pid {
                return None;
            }
            resume = None;
            continue;
        }
        let signal = match libc::WSTOPSIG(status) {
            syscall if syscall == libc::SIGTRAP | 0x80 => {
                if bpf_command(tid).is_some_and(|c| stage.holds_at(c, bpf_files(pid))) {
                    return Some(child);
                }
                0
            }
            // Exec and clone stops, and a new thread's first stop: no
            // signal of the program's own.
            libc::SIGTRAP | libc::SIGSTOP => 0,
            other => other,
        };
        resume = Some((tid, signal));
    }
}

/// Runs `cmd` until it prints its ready record. None if it exited first.
fn run_until_ready(mut cmd: Command) -> Option<Child> {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("enetstat");
    let pid = child.id() as i32;
    let _watchdog = watchdog(pid);
    let stderr = child.stderr.take().unwrap();
    BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .any(|line| tests::ready(&line))
        .then_some(child)
}

/// SIGKILLs `child` and reaps it and, if traced, every thread of it
/// (`Child::wait` would wait for ever for a leader whose traced threads
/// are left unreaped).
fn kill_and_reap(child: Child) {
    let pid = child.id() as i32;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    while let Some((reaped, status)) = wait_any() {
        if reaped == pid && !libc::WIFSTOPPED(status) {
            break;
        }
    }
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
        let mut cmd = ns.command(enetstat_bin());
        cmd.args(["-E", "-n", "--stop-json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let held = match stage {
            Stage::Streaming => run_until_ready(cmd),
            _ => hold_in(cmd, stage),
        };
        let child = held.unwrap_or_else(|| panic!("enetstat exited or timed out before {stage:?}"));
        let files = bpf_files(child.id() as i32);
        kill_and_reap(child);
        assert!(
            stage.is_in(files),
            "held for {stage:?} with (programs, links) {files:?}"
        );
        let left = freed_in_time();
        assert_eq!(left, Vec::<String>::new(), "after kill -9 in {stage:?}");
    }
}
