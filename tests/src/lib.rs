//! Harness for enetstat's integration tests: a network namespace per test,
//! processes inside it with bounded waits, and the real `enetstat` binary.
//!
//! Everything a test starts is cleaned up on drop, so a failing assertion
//! still removes its namespace and kills its processes.

pub mod cgroup;
pub mod kernel;
pub mod scrape;
pub mod sequences;
mod tracer;

pub use tracer::{LOG_RECORDS, Tracer, TracerOutput, ready};

use std::{
    fs,
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

/// The number written just before `label` in `line` (None: no `label`, or
/// no number before it).
pub fn number_before(line: &str, label: &str) -> Option<u64> {
    let at = line.find(label)?;
    line[..at].trim_end().rsplit(' ').next()?.parse().ok()
}

/// How many times slower than the host this machine runs the tests:
/// `ENETSTAT_TEST_SLOWDOWN`, 1 when unset. `cargo xtask test` sets it for
/// VMs without KVM (software emulation), where it was measured
/// (docs/KERNELS.md); every wait and settling pause of the tests scales by
/// it, so that no single timeout is raised on its own.
pub fn slowdown() -> u32 {
    static FACTOR: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *FACTOR.get_or_init(|| match std::env::var("ENETSTAT_TEST_SLOWDOWN") {
        Err(_) => 1,
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&f| f >= 1)
            .unwrap_or_else(|| panic!("ENETSTAT_TEST_SLOWDOWN={v:?}: want a whole number >= 1")),
    })
}

/// `time` on this machine: `slowdown()` times what it takes on the host.
pub fn slowed(time: Duration) -> Duration {
    time * slowdown()
}

/// How long any single wait in a test may take before it fails: 20 s on
/// the host.
pub fn wait_limit() -> Duration {
    slowed(Duration::from_secs(20))
}

/// How many storms a storm test may run when the kernel side counted
/// losses that are all changes no BPF program ran for, as on the
/// development machine (docs/INVESTIGATIONS.md): it spoils about one large storm in four.
pub const STORM_ATTEMPTS: usize = 3;

/// Directory holding the workspace's binaries (target/<profile>): integration
/// tests run from target/<profile>/deps.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The enetstat binary under test (`ENETSTAT_BIN`, or beside the tests).
pub fn enetstat_bin() -> PathBuf {
    let path =
        std::env::var_os("ENETSTAT_BIN").map_or_else(|| bin_dir().join("enetstat"), PathBuf::from);
    assert!(
        path.exists(),
        "{} not built: run the tests with `cargo xtask test`",
        path.display()
    );
    path
}

pub fn tcpload_bin() -> PathBuf {
    bin_dir().join("tcpload")
}

pub fn sockholder_bin() -> PathBuf {
    bin_dir().join("sockholder")
}

/// Runs a command to completion, panicking with its output if it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace owned by one test, removed (with everything running
/// in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!("enetstat-{tag}-{}", std::process::id());
        // A leftover from a crashed earlier run would make `add` fail.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh("ip", &["netns", "add", &name]);
        let ns = Self { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A `TcpExt` counter of the namespace (/proc/net/netstat).
    pub fn tcp_ext(&self, name: &str) -> u64 {
        self.counter("/proc/net/netstat", "TcpExt", name)
    }

    /// A `Tcp` counter of the namespace (/proc/net/snmp).
    pub fn tcp(&self, name: &str) -> u64 {
        self.counter("/proc/net/snmp", "Tcp", name)
    }

    fn counter(&self, file: &str, table: &str, name: &str) -> u64 {
        let text = self.exec_ok(&["cat", file]);
        netstat_common::snmp_field(&text, table, name)
            .unwrap_or_else(|| panic!("no {table} {name} in\n{text}"))
    }

    /// Runs `args` inside the namespace to completion; panics on failure.
    pub fn exec_ok(&self, args: &[&str]) -> String {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        sh("ip", &full)
    }

    /// Drops SYNs to `port` on input (nftables), so connects there time out
    /// with SYN retransmits.
    pub fn drop_syns_to(&self, port: u16) {
        self.drop_syns("input", port);
    }

    /// Drops SYNs to `port` on output: the sender's transmit fails.
    pub fn drop_outgoing_syns_to(&self, port: u16) {
        self.drop_syns("output", port);
    }

    fn drop_syns(&self, hook: &str, port: u16) {
        self.exec_ok(&["nft", "add table inet enetstat_test"]);
        self.exec_ok(&[
            "nft",
            &format!(
                "add chain inet enetstat_test {hook} {{ type filter hook {hook} priority 0 ; }}"
            ),
        ]);
        self.exec_ok(&[
            "nft",
            &format!("add rule inet enetstat_test {hook} tcp dport {port} tcp flags syn drop"),
        ]);
    }

    /// Drops the first SYN of each connect to `port` (nftables remembers
    /// the source port), so every handshake takes one SYN retransmit, about
    /// a second.
    pub fn drop_first_syn_to(&self, port: u16) {
        self.exec_ok(&["nft", "add table inet enetstat_first_syn"]);
        self.exec_ok(&[
            "nft",
            "add chain inet enetstat_first_syn input { type filter hook input priority 0 ; }",
        ]);
        self.exec_ok(&[
            "nft",
            "add set inet enetstat_first_syn seen { type inet_service ; timeout 60s ; }",
        ]);
        self.exec_ok(&[
            "nft",
            &format!("add rule inet enetstat_first_syn input tcp dport {port} tcp flags syn tcp sport @seen accept"),
        ]);
        self.exec_ok(&[
            "nft",
            &format!("add rule inet enetstat_first_syn input tcp dport {port} tcp flags syn add @seen {{ tcp sport }} drop"),
        ]);
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec_ok(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Runs `f` on a thread inside the namespace: sockets it makes are the
    /// namespace's.
    pub fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsRawFd as _;
        let file = fs::File::open(format!("/run/netns/{}", self.name)).expect("netns file");
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on an open namespace file, for this thread only.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .expect("thread inside the namespace")
        })
    }

    /// The namespace's inode, as events report it.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata(format!("/run/netns/{}", self.name))
            .expect("netns file")
            .ino()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Reads a stream line by line on a thread, so tests can wait with a deadline.
pub(crate) fn line_channel(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A child process whose stdout lines a test waits on. Killed on drop.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    what: String,
}

impl Proc {
    /// Starts `cmd` with piped stdin/stdout (stderr inherited for diagnosis).
    pub fn spawn(mut cmd: Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let lines = line_channel(child.stdout.take().expect("stdout"));
        Self { child, lines, what }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (bounded) for the next stdout line and checks it starts with `want`.
    pub fn expect(&mut self, want: &str) -> String {
        match self.lines.recv_timeout(wait_limit()) {
            Ok(line) if line.starts_with(want) => line,
            Ok(line) => panic!("{}: expected {want:?}, got {line:?}", self.what),
            Err(_) => panic!("{}: no {want:?} within {:?}", self.what, wait_limit()),
        }
    }

    /// Tells the process (tcpload `connect`, `listen`, `flood`) to close,
    /// and waits (bounded) until it says it has.
    pub fn close(&mut self) {
        self.tell("close");
        self.expect("closed");
    }

    /// Sends a line to the process's stdin.
    pub fn tell(&mut self, line: &str) {
        use std::io::Write as _;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    pub fn wait(&mut self) -> ExitStatus {
        wait_bounded(&mut self.child, &self.what)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + wait_limit();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not exit within {:?}",
            wait_limit()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// setsockopt(2) at the SOL_SOCKET level; `name` labels the error.
pub fn set_socket_option<T>(
    socket: &impl std::os::fd::AsRawFd,
    option: libc::c_int,
    value: &T,
    name: &str,
) -> anyhow::Result<()> {
    // SAFETY: a valid socket fd, and a value of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        anyhow::bail!("{name}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The last table the live view printed to a pipe (tables follow `--- time`
/// lines).
pub fn last_table(stdout: &str) -> &str {
    match stdout.rsplit_once("\n--- ") {
        Some((_, last)) => last.split_once('\n').map_or("", |(_time, table)| table),
        None => stdout,
    }
}

/// The TCP rows of a table, sorted, without trailing blanks; `live` drops the
/// view's extra In-State column, which a snapshot does not have.
pub fn tcp_rows(table: &str, live: bool) -> Vec<String> {
    let mut rows: Vec<String> = table
        .lines()
        .filter(|l| l.starts_with("tcp"))
        .map(|l| {
            let l = if live {
                l.rsplit_once(' ').expect("In-State column").0
            } else {
                l
            };
            l.trim_end().to_string()
        })
        .collect();
    rows.sort();
    rows
}

/// `tcpload serve` in `ns`, once it listens.
pub fn serve(ns: &Netns, listen: &str, extra: &[&str]) -> Proc {
    let mut cmd = ns.command(tcpload_bin());
    cmd.args(["serve", "--listen", listen]).args(extra);
    let mut server = Proc::spawn(cmd);
    server.expect("listening");
    server
}

/// `tcpload listen` in `ns`: a listener on `addr` with `backlog` that
/// never accepts, until told to close.
pub fn listen(ns: &Netns, addr: &str, backlog: u32) -> Proc {
    let mut cmd = ns.command(tcpload_bin());
    cmd.args([
        "listen",
        "--listen",
        addr,
        "--backlog",
        &backlog.to_string(),
    ]);
    let mut listener = Proc::spawn(cmd);
    listener.expect("listening");
    listener
}

/// Lifts this process's open-file limit to its hard limit (tests that
/// hold a thousand connections).
pub fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to a rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

/// Whether the running kernel is older than `major.minor`.
pub fn kernel_before(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (major, minor)
}

/// `setpriv` as user nobody with exactly `caps` (setpriv's names: `bpf`,
/// `perfmon`) effective, inherited, ambient and bounding, then `--`: the
/// command to put before a program.
pub fn as_nobody(caps: &[&str]) -> Vec<String> {
    as_uid(65534, caps)
}

/// As [`as_nobody`], as user and group `uid`.
pub fn as_uid(uid: u32, caps: &[&str]) -> Vec<String> {
    let set: String = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    [
        "setpriv",
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        &format!("--inh-caps={set}"),
        &format!("--ambient-caps={set}"),
        &format!("--bounding-set={set}"),
        "--",
    ]
    .map(String::from)
    .to_vec()
}

/// `tcpload flood` in `ns`: `count` non-blocking connects to `to`, held
/// until told to close.
pub fn flood(ns: &Netns, to: &str, count: u32) -> Proc {
    let mut cmd = ns.command(tcpload_bin());
    cmd.args(["flood", "--to", to, "--count", &count.to_string()]);
    let mut flood = Proc::spawn(cmd);
    flood.expect("flooded");
    flood
}

/// `tcpload storm` in `ns`: `count` connections to a server of its own on
/// `listen`, run to the end.
pub fn storm(ns: &Netns, listen: &str, count: u64, extra: &[&str]) {
    let mut cmd = ns.command(tcpload_bin());
    cmd.args(["storm", "--listen", listen, "--count", &count.to_string()])
        .args(extra);
    let mut storm = Proc::spawn(cmd);
    storm.expect("storm");
    assert!(storm.wait().success());
}

/// `tcpload connect` in `ns` (the test waits for "connected" or "failed").
pub fn connect(ns: &Netns, to: &str, extra: &[&str]) -> Proc {
    let mut cmd = ns.command(tcpload_bin());
    cmd.args(["connect", "--to", to]).args(extra);
    Proc::spawn(cmd)
}

/// A connect to `port` of `ns` whose SYNs get no answer, traced; the
/// tracer's output and the client's pid. `while_syn_sent` runs once the
/// first SYN is out.
pub fn unanswered_connect(
    ns: &Netns,
    port: u16,
    while_syn_sent: impl FnOnce(),
) -> (TracerOutput, u32) {
    ns.drop_syns_to(port);
    // Give up after two retries (a few seconds) instead of six.
    ns.sysctl("net.ipv4.tcp_syn_retries", "2");
    let tracer = Tracer::start(ns, &["-E", "-n", "--json"]);
    let mut client = connect(ns, &format!("127.0.0.1:{port}"), &["--timeout-ms", "30000"]);
    let deadline = Instant::now() + wait_limit();
    let syn_sent = format!(":{port:04X} 02 ");
    while !ns.exec_ok(&["cat", "/proc/net/tcp"]).contains(&syn_sent) {
        assert!(Instant::now() < deadline, "no SYN_SENT socket to {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    while_syn_sent();
    client.expect("failed TimedOut");
    assert!(client.wait().success());
    tracer.wait_quiet();
    (tracer.stop(), client.pid())
}

/// Whether `got` and `want` differ only by rows of unseen changes into TIME_WAIT
/// (the changes into TIME_WAIT the development machine runs no BPF program
/// for, docs/INVESTIGATIONS.md; no later event reveals them as a gap).
pub fn only_unseen_time_wait(got: &[String], want: &[String]) -> bool {
    // Proto, Recv-Q, Send-Q, Local, Foreign, State: the endpoints of a
    // row in one of `states`.
    let ends = |row: &str, states: &[&str]| -> Option<String> {
        let words: Vec<&str> = row.split_whitespace().collect();
        let state = words.get(5)?;
        states
            .contains(state)
            .then(|| format!("{} {} {}", words[0], words[3], words[4]))
    };
    let view: Vec<&String> = got.iter().filter(|r| !want.contains(r)).collect();
    let kernel: Vec<&String> = want.iter().filter(|r| !got.contains(r)).collect();
    let mut from: Vec<Option<String>> = view
        .iter()
        .map(|r| ends(r, &["FIN_WAIT1", "FIN_WAIT2"]))
        .collect();
    let mut to: Vec<Option<String>> = kernel.iter().map(|r| ends(r, &["TIME_WAIT"])).collect();
    from.sort();
    to.sort();
    !from.is_empty() && from.iter().all(Option::is_some) && from == to
}

/// Up to ten of `a`'s rows that `b` lacks (for a failure's message).
pub fn rows_only_in(a: &[String], b: &[String]) -> Vec<String> {
    a.iter()
        .filter(|r| !b.contains(r))
        .take(10)
        .cloned()
        .collect()
}
