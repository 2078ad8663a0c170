//! `enetstat` under test: started in a namespace, its stdout in a file,
//! waited for by its ready record, stopped with SIGTERM. The bench also
//! runs other tracers (tcpstates, bpftrace) through it for comparison.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use crate::{Netns, enetstat_bin, line_channel, wait_bounded, wait_limit};

/// `enetstat` running inside a namespace with stdout going to a file.
pub struct Tracer {
    child: Child,
    stderr: Receiver<String>,
    out: PathBuf,
    /// The `enetstat: note:` lines read while starting (what this kernel
    /// cannot give), handed back at the front of `TracerOutput::stderr`.
    notes: Vec<String>,
    /// SIGTERM for enetstat (as a service manager stops it); SIGINT for the
    /// other tracers, which print what they buffered only on it.
    stop_signal: i32,
}

/// The `event` of the records that make a JSON log self-contained.
pub const LOG_RECORDS: [&str; 6] = [
    "log",
    "snapshot",
    "snapshot_end",
    "resync",
    "resync_end",
    "rotated",
];

/// How enetstat starts a line saying what this kernel cannot give.
const NOTE: &str = "enetstat: note: ";

/// Whether `line` is enetstat's ready record (`{"ready":{...}}`).
pub fn ready(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["ready"].is_object())
}

/// What a stopped tracer printed.
pub struct TracerOutput {
    pub stdout: String,
    pub stderr: Vec<String>,
    pub status: ExitStatus,
}

impl Tracer {
    /// The enetstat process (`ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `enetstat <args>` in `ns` and waits until it reports that it is
    /// attached, so that nothing the test does afterwards is missed.
    pub fn start(ns: &Netns, args: &[&str]) -> Self {
        Self::start_program(ns, &enetstat_bin(), args)
    }

    /// As `start`, for another build of enetstat (the packaged one). Waits
    /// for the ready record (`--stop-json` is added where neither it nor
    /// `--json` is given), never for enetstat's English.
    pub fn start_program(ns: &Netns, program: &Path, args: &[&str]) -> Self {
        let mut args = args.to_vec();
        if !args.iter().any(|a| *a == "--json" || *a == "--stop-json") {
            args.push("--stop-json");
        }
        Self::spawn_program(ns, program, &args).until_ready()
    }

    /// As `start`, with enetstat run through `wrapper` inside the namespace
    /// (`setpriv ... --`: another user, other capabilities).
    pub fn start_wrapped(ns: &Netns, wrapper: &[String], program: &Path, args: &[&str]) -> Self {
        let mut cmd = ns.command(&wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(program)
            .args(args)
            .arg("--stop-json");
        let out = std::env::temp_dir().join(format!("{}-wrapped.out", ns.name));
        Self::spawn_command(cmd, out).until_ready()
    }

    /// As `start`, run outside the namespace and pointed at it with
    /// `--netns NAME`: it then sees the host's mounts, among them the
    /// cgroup hierarchy that `ip netns exec` hides under a sysfs of its own.
    pub fn start_beside(ns: &Netns, args: &[&str]) -> Self {
        let mut cmd = Command::new(enetstat_bin());
        cmd.args(args).args(["--netns", &ns.name, "--stop-json"]);
        let out = std::env::temp_dir().join(format!(
            "{}-beside-{}.out",
            ns.name,
            args.join("_").replace('/', "")
        ));
        Self::spawn_command(cmd, out).until_ready()
    }

    /// Waits (bounded) for the ready record.
    fn until_ready(mut self) -> Self {
        let tracer = &mut self;
        let deadline = Instant::now() + wait_limit();
        let mut said = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tracer.stderr.recv_timeout(left) {
                Ok(line) if ready(&line) => return self,
                Ok(line) if line.starts_with(NOTE) => tracer.notes.push(line),
                Ok(line) => said.push(line),
                Err(_) => panic!(
                    "enetstat gave no ready record within {:?}; it said: {said:?}",
                    wait_limit()
                ),
            }
        }
    }

    /// Starts another tracer for comparison (`cmd`, stdout into a file):
    /// it announces nothing, so it gets `settle` to attach. Stopped with
    /// SIGINT.
    pub fn start_other(cmd: Command, tag: &str, settle: Duration) -> Self {
        let out =
            std::env::temp_dir().join(format!("enetstat-other-{tag}-{}.out", std::process::id()));
        let mut tracer = Self::spawn_command(cmd, out);
        tracer.stop_signal = libc::SIGINT;
        std::thread::sleep(settle);
        tracer
    }

    /// Starts the live view `enetstat -c <args>` in `ns` and waits for its
    /// first table, drawn once its programs are attached.
    pub fn start_live(ns: &Netns, args: &[&str]) -> Self {
        Self::start_live_until(ns, args, "Proto")
    }

    /// Starts `enetstat -c <args>` in `ns` and waits until its output holds
    /// `first` (what its first drawing shows).
    pub fn start_live_until(ns: &Netns, args: &[&str], first: &str) -> Self {
        Self::start_live_program(ns, &enetstat_bin(), args, first)
    }

    /// As `start_live_until`, for another build of enetstat.
    pub fn start_live_program(ns: &Netns, program: &Path, args: &[&str], first: &str) -> Self {
        let mut full = vec!["-c"];
        full.extend_from_slice(args);
        let mut tracer = Self::spawn_program(ns, program, &full);
        let deadline = Instant::now() + wait_limit();
        while !tracer.output().contains(first) {
            match tracer.stderr.try_recv() {
                Ok(line) if line.starts_with(NOTE) => tracer.notes.push(line),
                Ok(line) => panic!("enetstat -c: {line}"),
                Err(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "enetstat -c drew no {first:?} within {:?}",
                wait_limit()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        tracer
    }

    /// Waits (bounded) for a line of output that `wanted` accepts.
    pub fn wait_for_line(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + wait_limit();
        loop {
            if let Some(line) = self.output().lines().find(|l| wanted(l)) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {:?} in\n{}",
                wait_limit(),
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn spawn_program(ns: &Netns, program: &Path, args: &[&str]) -> Self {
        let out = std::env::temp_dir().join(format!(
            "{}-{}.out",
            ns.name,
            args.join("_").replace('/', "")
        ));
        let mut cmd = ns.command(program);
        cmd.args(args);
        Self::spawn_command(cmd, out)
    }

    fn spawn_command(mut cmd: Command, out: PathBuf) -> Self {
        let file = fs::File::create(&out).expect("create tracer output");
        let mut child = cmd
            .stdout(file)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let stderr = line_channel(child.stderr.take().expect("stderr"));
        Self {
            child,
            stderr,
            out,
            notes: Vec::new(),
            stop_signal: libc::SIGTERM,
        }
    }

    /// The file the tracer writes to.
    pub fn output_path(&self) -> &Path {
        &self.out
    }

    /// What the tracer has written so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the output file stops growing (bounded).
    pub fn wait_quiet(&self) {
        let deadline = Instant::now() + wait_limit();
        let mut last = u64::MAX;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(400));
            let len = fs::metadata(&self.out).map_or(0, |m| m.len());
            if len == last {
                return;
            }
            last = len;
        }
        panic!("enetstat output still growing after {:?}", wait_limit());
    }

    /// Stops the tracer (enetstat with SIGTERM, as a service manager would)
    /// and collects its output.
    pub fn stop(mut self) -> TracerOutput {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, self.stop_signal) };
        let status = wait_bounded(&mut self.child, "enetstat");
        let mut stderr = std::mem::take(&mut self.notes);
        // Every line up to the pipe's end: the reader thread may still be
        // handing over the last ones (the stop object) after the exit.
        while let Ok(line) = self.stderr.recv_timeout(wait_limit()) {
            stderr.push(line);
        }
        let stdout = self.output();
        TracerOutput {
            stdout,
            stderr,
            status,
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.out);
    }
}

impl TracerOutput {
    /// The NDJSON lines as JSON values, without the log's own records
    /// (its header and the snapshot and resync groups): events, loss
    /// marks, -S blocks.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|r| {
                !r["event"]
                    .as_str()
                    .is_some_and(|e| LOG_RECORDS.contains(&e))
            })
            .collect()
    }

    /// Every NDJSON line as a JSON value.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }

    /// The stop object `--json` ends stderr with (README, "The stop object").
    pub fn stop_object(&self) -> serde_json::Value {
        let last = self
            .stderr
            .last()
            .unwrap_or_else(|| panic!("nothing on stderr"));
        let object: serde_json::Value = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("last stderr line {last:?} is no JSON stop object: {e}"));
        assert!(object["stop"].is_string(), "{object}");
        object
    }

    /// Of the losses in the stop object: gaps found in sockets' histories.
    pub fn gaps(&self) -> u64 {
        self.stop_object()["gaps"].as_u64().expect("gaps")
    }

    /// From the stop object: (events seen, lost in kernel, owners unknown).
    pub fn summary(&self) -> (u64, u64, u64) {
        let stop = self.stop_object();
        let number = |k: &str| stop[k].as_u64().unwrap_or_else(|| panic!("{k} in {stop}"));
        (
            number("events_seen"),
            number("lost"),
            number("owners_unknown"),
        )
    }
}
