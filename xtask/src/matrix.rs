//! `cargo xtask test`: every test binary, built once, on the host kernel and
//! inside a VM for each kernel of the matrix, with one table at the end.
//!
//! The VM is virtme-ng (`vng`) on QEMU sharing the host's root file system
//! read-only, so the guest runs the very binaries and tools the host built
//! and installed. Kernels come from Debian's packages, unpacked under
//! `target/kernels` (nothing goes into the host's boot path); virtme-ng
//! finds their modules beside the unpacked image.

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{apt::Apt, setup};

/// A kernel the tests run on besides the host's: Debian's own.
pub struct Kernel {
    /// What `--kernel` and the table call it.
    pub name: &'static str,
    /// The Debian package that always depends on the newest image of that line.
    pub package: &'static str,
    /// The Debian release it comes from, where that is not the machine's
    /// own (fetched through a private apt configuration, `apt::Apt::suite`).
    pub suite: Option<&'static str>,
}

/// Oldest first: the table's columns follow this order.
pub const MATRIX: &[Kernel] = &[
    Kernel {
        name: "5.10",
        package: "linux-image-amd64",
        suite: Some("bullseye"),
    },
    Kernel {
        name: "6.1",
        package: "linux-image-amd64",
        suite: None,
    },
    Kernel {
        name: "6.12",
        package: "linux-image-6.12-amd64",
        suite: None,
    },
];

/// How much longer than on the host a test may wait for anything in a VM
/// without KVM (software emulation). The tests multiply every wait by it
/// (`ENETSTAT_TEST_SLOWDOWN`, tests/src/lib.rs). Measured here
/// (docs/KERNELS.md): a 20,000-connection storm takes 4.0x the host's time
/// in a guest emulated on one host thread; 6 leaves room above that.
const TCG_SLOWDOWN: &str = "6";

/// Longest one kernel's VM run may take before it is killed and failed.
const VM_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A test binary cargo built: its target name and path.
pub struct TestBinary {
    pub name: String,
    pub path: PathBuf,
    /// An integration test of the `tests` crate (needs root and the kernel).
    pub integration: bool,
}

/// Passed and failed tests of one binary on one kernel; None where the
/// binary printed no result (it crashed, or the VM died).
type Outcome = Option<(u64, u64)>;

/// A cell of the table.
#[derive(Clone, Copy)]
enum Cell {
    /// Not asked for (`--kernel`), or a unit test in a VM column.
    NotRun,
    Ran(Outcome),
}

pub struct Report {
    /// Column per kernel ("host" first), row per binary.
    kernels: Vec<&'static str>,
    rows: Vec<(String, Vec<Cell>)>,
}

/// Builds every test binary (release: the storm tests need the consumer at
/// full speed) and lists them, unit tests first.
pub fn build_tests() -> Result<Vec<TestBinary>> {
    println!("xtask: cargo test --release --no-run --message-format=json-render-diagnostics");
    let out = Command::new(crate::env_or("CARGO", "cargo"))
        .args([
            "test",
            "--release",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(crate::workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the tests failed");
    }
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        // Binaries the tests run (tcpload, ...) come as artifacts too.
        let Some(path) = message["executable"].as_str() else {
            continue;
        };
        if message["profile"]["test"] != true {
            continue;
        }
        let target = &message["target"];
        let kind_test = target["kind"].as_array().is_some_and(|k| k[0] == "test");
        let package = message["package_id"].as_str().unwrap_or_default();
        binaries.push(TestBinary {
            name: target["name"].as_str().unwrap_or("?").to_string(),
            path: PathBuf::from(path),
            integration: kind_test && package.contains("/tests#"),
        });
    }
    binaries.sort_by_key(|b| (b.integration, b.name.clone()));
    Ok(binaries)
}

/// Runs the unit tests here and the integration tests on each chosen
/// kernel (`host`: this machine's own), `jobs` VMs at once.
pub fn run(
    binaries: &[TestBinary],
    host: bool,
    vms: &[&'static Kernel],
    args: &[String],
    jobs: usize,
) -> Report {
    let mut kernels = vec!["host"];
    kernels.extend(vms.iter().map(|k| k.name));
    let mut rows: Vec<(String, Vec<Cell>)> = Vec::new();
    for binary in binaries {
        let mut cells = vec![Cell::NotRun; kernels.len()];
        if !binary.integration || host {
            cells[0] = Cell::Ran(run_on_host(binary, args));
        }
        rows.push((binary.name.clone(), cells));
    }
    let integration: Vec<&TestBinary> = binaries.iter().filter(|b| b.integration).collect();
    // One download at a time: the kernels of one release share apt's lists.
    let images: Vec<Result<PathBuf>> = vms.iter().map(|k| fetch_kernel(k)).collect();
    let started = Instant::now();
    let results = side_by_side(jobs, vms.len(), |i| match &images[i] {
        Ok(image) => run_in_vm(vms[i], image, &integration, args),
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    });
    if !vms.is_empty() {
        println!(
            "xtask: the kernel matrix took {} s ({} VMs, {} at once)",
            started.elapsed().as_secs(),
            vms.len(),
            jobs.min(vms.len())
        );
    }
    for (column, (kernel, result)) in vms.iter().zip(results).enumerate() {
        let outcomes = result.unwrap_or_else(|e| {
            println!("xtask: kernel {}: {e:#}", kernel.name);
            vec![None; integration.len()]
        });
        for (binary, outcome) in integration.iter().zip(outcomes) {
            if let Some(row) = rows.iter_mut().find(|r| r.0 == binary.name) {
                row.1[column + 1] = Cell::Ran(outcome);
            }
        }
    }
    Report { kernels, rows }
}

/// `work(0..count)`, at most `jobs` at once, on threads of their own; the
/// results in index order.
fn side_by_side<T: Send>(jobs: usize, count: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let result = work(i);
                    done.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((i, result));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
}

/// Runs one test binary here, its output shown as it comes.
fn run_on_host(binary: &TestBinary, args: &[String]) -> Outcome {
    println!("xtask: host: {}", binary.path.display());
    let child = Command::new(&binary.path)
        .args(args)
        .current_dir(crate::workspace_root())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("xtask: could not start {}", binary.path.display());
        return None;
    };
    let mut outcome = None;
    for line in BufReader::new(child.stdout.take()?).lines() {
        let Ok(line) = line else { break };
        println!("{line}");
        outcome = outcome.or(result_line(&line));
    }
    let _ = child.wait();
    outcome
}

/// (passed, failed) from libtest's closing line.
fn result_line(line: &str) -> Outcome {
    let rest = line.strip_prefix("test result: ")?;
    let number = |label: &str| -> Option<u64> {
        let at = rest.find(label)?;
        rest[..at].trim_end().rsplit(' ').next()?.parse().ok()
    };
    Some((number(" passed")?, number(" failed")?))
}

/// Boots `kernel`'s `image` and runs every integration test binary in it.
/// Its output (each binary's log, the guest console's Oops and panic
/// lines) is printed in one piece once the VM is done, so that VMs running
/// side by side do not interleave.
fn run_in_vm(
    kernel: &Kernel,
    image: &Path,
    integration: &[&TestBinary],
    args: &[String],
) -> Result<Vec<Outcome>> {
    let dir = crate::workspace_root()
        .join("target/matrix")
        .join(kernel.name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let kvm = kvm_works(image, &dir);
    let script = guest_script(
        &dir,
        integration,
        args,
        if kvm { "1" } else { TCG_SLOWDOWN },
    );
    let script_path = dir.join("run.sh");
    fs::write(&script_path, script).context("writing the guest script")?;
    println!(
        "xtask: kernel {}: booting {} ({}) and running {} test binaries; output in {}",
        kernel.name,
        image.display(),
        if kvm {
            "KVM"
        } else {
            "no KVM here: software emulation"
        },
        integration.len(),
        dir.display()
    );
    let started = Instant::now();
    let console = dir.join("console.log");
    let booted = boot(image, &dir, &script_path, (kvm, &console), VM_TIMEOUT, None)?;
    let mut out = format!(
        "xtask: kernel {}: VM finished in {} s\n",
        kernel.name,
        started.elapsed().as_secs()
    );
    // A guest that died says why on its console only.
    let console_text = fs::read_to_string(&console).unwrap_or_default();
    for line in console_text
        .lines()
        .filter(|l| l.contains("Oops:") || l.contains("Kernel panic"))
    {
        let _ = writeln!(out, "xtask: kernel {}: guest console: {line}", kernel.name);
    }
    let mut outcomes = Vec::new();
    for binary in integration {
        let log = fs::read_to_string(dir.join(format!("{}.log", binary.name))).unwrap_or_default();
        let _ = writeln!(out, "xtask: kernel {}: {}", kernel.name, binary.name);
        out.push_str(&log);
        outcomes.push(log.lines().find_map(result_line));
    }
    let guest_kernel = fs::read_to_string(dir.join("uname")).unwrap_or_default();
    print!("{out}");
    if guest_kernel.trim().is_empty() {
        bail!(
            "the VM ran no test (timed out: {}); its console is in {}",
            !booted,
            console.display()
        );
    }
    println!(
        "xtask: kernel {}: guest ran {}",
        kernel.name,
        guest_kernel.trim()
    );
    Ok(outcomes)
}

/// The guest's script: the namespaces directory on a tmpfs (the shared root
/// is read-only), then each test binary with its output to `dir`.
fn guest_script(dir: &Path, binaries: &[&TestBinary], args: &[String], slowdown: &str) -> String {
    let root = crate::workspace_root();
    let mut s = String::from("#!/bin/sh\n");
    let _ = writeln!(
        s,
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    let _ = writeln!(s, "export ENETSTAT_TEST_SLOWDOWN={slowdown}");
    let _ = writeln!(s, "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns");
    let _ = writeln!(s, "cd '{}'", root.display());
    let _ = writeln!(s, "uname -r > '{}/uname'", dir.display());
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    for b in binaries {
        let _ = writeln!(
            s,
            "'{}' {} > '{}/{}.log' 2>&1",
            b.path.display(),
            quoted.join(" "),
            dir.display(),
            b.name
        );
    }
    s
}

/// Whether KVM boots a guest here: QEMU refuses it at once on machines
/// without nested virtualization, so one trial boot tells.
fn kvm_works(image: &Path, dir: &Path) -> bool {
    if !Path::new("/dev/kvm").exists() {
        return false;
    }
    let marker = dir.join("kvm-ok");
    let script = dir.join("kvm.sh");
    let text = format!("#!/bin/sh\ntouch '{}'\n", marker.display());
    if fs::write(&script, text).is_err() {
        return false;
    }
    let log = dir.join("kvm-console.log");
    // Where KVM cannot run the guest, QEMU reports an internal error and
    // waits: no need to wait out the trial.
    let failed = Some("KVM internal error");
    let _ = boot(
        image,
        dir,
        &script,
        (true, &log),
        Duration::from_secs(120),
        failed,
    );
    marker.exists()
}

/// Runs `script` in a VM on `image` (with KVM or not, its console into
/// a file); false if it had to be killed at `timeout`, or as soon as the
/// console shows `give_up`. vng's exit status says nothing of the script's
/// (it exits 255 after a clean run here), so results are read from `dir`.
fn boot(
    image: &Path,
    dir: &Path,
    script: &Path,
    (kvm, console): (bool, &Path),
    timeout: Duration,
    give_up: Option<&str>,
) -> Result<bool> {
    let _ = setup::make_executable(script);
    let log = fs::File::create(console).context("creating the console log")?;
    let mut cmd = Command::new("vng");
    cmd.arg("-r")
        .arg(image)
        // Without it vng 1.42 exits 255 at once with the 6.12 kernel.
        .arg("--verbose")
        .args(["--cpus", "2", "--memory", "4G"])
        .arg("--rwdir")
        .arg(dir);
    if !kvm {
        // One host thread for all vCPUs: with QEMU's default multi-threaded
        // emulation, 6.12 died here of an int3 Oops at a tracepoint site
        // the kernel was patching as a program attached (the vCPUs saw the
        // code change out of order). Two guest CPUs are kept: the tests
        // need events on both.
        cmd.args(["--disable-kvm", "--qemu-opts=-accel tcg,thread=single"]);
    }
    // A group of its own: QEMU outlives a killed vng, and a VM left
    // running takes a core from every later one (seen here after each
    // timed-out KVM trial).
    let mut child = cmd
        .arg("--")
        .arg(script)
        .process_group(0)
        .current_dir(crate::workspace_root())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting vng")?;
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            kill_group(child.id());
            return Ok(true);
        }
        let gave_up = give_up
            .is_some_and(|text| fs::read_to_string(console).is_ok_and(|log| log.contains(text)));
        if gave_up || Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Kills every process left in the group `leader` led.
fn kill_group(leader: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{leader}")])
        .stderr(Stdio::null())
        .status();
}

/// The kernel image of `kernel`'s newest package, downloaded and unpacked
/// under target/kernels once.
fn fetch_kernel(kernel: &Kernel) -> Result<PathBuf> {
    let apt = match kernel.suite {
        Some(suite) => Apt::suite(suite)?,
        None => Apt::machine(),
    };
    let package = apt
        .newest_dependency(kernel.package)
        .with_context(|| format!("finding the image package behind {}", kernel.package))?;
    let version = package
        .strip_prefix("linux-image-")
        .with_context(|| format!("{} depends on {package}, not a linux-image", kernel.package))?;
    let root = crate::workspace_root()
        .join("target/kernels")
        .join(&package);
    let image = root.join("boot").join(format!("vmlinuz-{version}"));
    if image.exists() {
        return Ok(image);
    }
    fs::create_dir_all(&root)?;
    apt.download_unpack(&package, &root)?;
    if !image.exists() {
        bail!("{package} holds no {}", image.display());
    }
    Ok(image)
}

impl Report {
    pub fn all_passed(&self) -> bool {
        self.rows
            .iter()
            .flat_map(|(_, cells)| cells)
            .all(|cell| match cell {
                Cell::NotRun => true,
                Cell::Ran(outcome) => matches!(outcome, Some((_, 0))),
            })
    }

    /// The table, test binary by kernel, and the total.
    pub fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.0.len())
            .max()
            .unwrap_or(0)
            .max(11);
        let mut s = format!("{:width$}", "test binary");
        for k in &self.kernels {
            let _ = write!(s, "  {k:>16}");
        }
        s.push('\n');
        let (mut passed, mut failed) = (0, 0);
        for (name, cells) in &self.rows {
            let _ = write!(s, "{name:width$}");
            for cell in cells {
                let text = match cell {
                    Cell::NotRun => "-".to_string(),
                    Cell::Ran(Some((p, 0))) => format!("{p} passed"),
                    Cell::Ran(Some((p, f))) => format!("{f} FAILED, {p} ok"),
                    Cell::Ran(None) => "NO RESULT".to_string(),
                };
                if let Cell::Ran(Some((p, f))) = cell {
                    passed += p;
                    failed += f;
                }
                let _ = write!(s, "  {text:>16}");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "total: {passed} passed, {failed} failed");
        s
    }
}
