//! `cargo xtask dist`: the packages a fleet installs, built from the
//! release binary (its kernel programs embedded):
//! `target/dist/enetstat_<version>_amd64.deb` and
//! `target/dist/enetstat-<version>-x86_64-linux.tar.gz`, each with the man
//! page and shell completions that `enetstat --generate` makes from the
//! clap definition, and systemd units for the metrics endpoint and the event
//! log (installed, not enabled).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{release_bin, workspace_root};

/// The unit a user enables to serve metrics on every node: least privilege,
/// `systemd-analyze security` 1.9 (the package test holds it to 4.0).
const METRICS_UNIT: &str = "\
[Unit]
Description=enetstat Prometheus metrics: TCP connections, failures and states from eBPF
Documentation=man:enetstat(8)
After=network.target

[Service]
# The default serves loopback only; set ENETSTAT_METRICS_ARGS in
# /etc/default/enetstat to change it (README, On a fleet).
Environment=\"ENETSTAT_METRICS_ARGS=--metrics 127.0.0.1:9977\"
EnvironmentFile=-/etc/default/enetstat
ExecStart=/usr/bin/enetstat $ENETSTAT_METRICS_ARGS
";

/// The unit that keeps a continuous, rotated event log, every file of it
/// self-contained for `--replay`.
const LOG_UNIT: &str = "\
[Unit]
Description=enetstat TCP state-change log: every transition with its owner, rotated under /var/log/enetstat
Documentation=man:enetstat(8)
After=network.target

[Service]
# Rotation and filters: set ENETSTAT_LOG_ARGS in /etc/default/enetstat.
Environment=\"ENETSTAT_LOG_ARGS=--rotate-size 100M --rotate-keep 10\"
EnvironmentFile=-/etc/default/enetstat
ExecStart=/usr/bin/enetstat -E --json --output %L/enetstat/events.ndjson $ENETSTAT_LOG_ARGS
LogsDirectory=enetstat
LogsDirectoryMode=0750
";

/// What both units run under: least privilege.
const HARDENING: &str = "\
Restart=on-failure
RestartSec=5
# Least privilege (README, Capabilities): a user of its own with the two
# capabilities that load and read the eBPF programs. Linux before 5.11
# charges BPF maps to the locked-memory limit, lifted here.
DynamicUser=yes
AmbientCapabilities=CAP_BPF CAP_PERFMON
CapabilityBoundingSet=CAP_BPF CAP_PERFMON
LimitMEMLOCK=infinity
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native
SystemCallFilter=@system-service bpf perf_event_open
SystemCallErrorNumber=EPERM
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
PrivateMounts=yes
KeyringMode=private
UMask=0077

[Install]
WantedBy=multi-user.target
";

/// The units, installed, not enabled: (path, what runs).
const UNITS: [(&str, &str); 2] = [
    ("lib/systemd/system/enetstat-metrics.service", METRICS_UNIT),
    ("lib/systemd/system/enetstat-log.service", LOG_UNIT),
];

/// Where each generated file goes, under the package root.
const FILES: &[(&str, &str)] = &[
    ("man", "usr/share/man/man8/enetstat.8"),
    ("bash", "usr/share/bash-completion/completions/enetstat"),
    ("zsh", "usr/share/zsh/vendor-completions/_enetstat"),
    ("fish", "usr/share/fish/vendor_completions.d/enetstat.fish"),
];
/// The documentation shipped under /usr/share/doc/enetstat: the README and
/// every file it links to.
const DOCS: &[&str] = &[
    "README.md",
    "docs/ARCHITECTURE.md",
    "docs/REFERENCE.md",
    "docs/INVESTIGATIONS.md",
    "docs/KERNELS.md",
    "docs/PERFORMANCE.md",
    "bench/RESULTS.md",
];

/// The packages' directory.
pub fn dir() -> PathBuf {
    workspace_root().join("target/dist")
}

/// Builds both packages; returns the .deb's path.
pub fn build(version: &str) -> Result<PathBuf> {
    let root = dir().join(format!("enetstat_{version}_amd64"));
    let _ = fs::remove_dir_all(&root);
    println!("xtask: staging the package in {}", root.display());
    install(&root)?;
    let deb = dir().join(format!("enetstat_{version}_amd64.deb"));
    write(&root.join("DEBIAN/control"), &control(version)?)?;
    run(
        "dpkg-deb",
        &[
            "--root-owner-group".as_ref(),
            "--build".as_ref(),
            root.as_os_str(),
            deb.as_os_str(),
        ],
    )?;
    fs::remove_dir_all(root.join("DEBIAN"))?;
    let tarball = dir().join(format!("enetstat-{version}-x86_64-linux.tar.gz"));
    run(
        "tar",
        &[
            "--owner=0".as_ref(),
            "--group=0".as_ref(),
            "-czf".as_ref(),
            tarball.as_os_str(),
            "-C".as_ref(),
            root.as_os_str(),
            ".".as_ref(),
        ],
    )?;
    println!("xtask: wrote {} and {}", deb.display(), tarball.display());
    Ok(deb)
}

/// The files of the package, under `root` as they are installed under /.
fn install(root: &Path) -> Result<()> {
    let binary = release_bin("enetstat");
    let to = root.join("usr/bin/enetstat");
    fs::create_dir_all(to.parent().expect("a directory"))?;
    fs::copy(&binary, &to).with_context(|| format!("copying {}", binary.display()))?;
    for (what, path) in FILES {
        let out = Command::new(&binary)
            .args(["--generate", what])
            .output()
            .context("running enetstat --generate")?;
        if !out.status.success() {
            bail!(
                "enetstat --generate {what} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        write(&root.join(path), &String::from_utf8(out.stdout)?)?;
    }
    run("gzip", &["-9n".as_ref(), root.join(FILES[0].1).as_os_str()])?;
    for (path, service) in UNITS {
        write(&root.join(path), &format!("{service}{HARDENING}"))?;
    }
    // The README and what it links to, at the same relative paths.
    let doc = root.join("usr/share/doc/enetstat");
    for file in DOCS {
        let to = doc.join(file);
        fs::create_dir_all(to.parent().expect("a directory"))?;
        fs::copy(workspace_root().join(file), &to).with_context(|| format!("copying {file}"))?;
    }
    Ok(())
}

fn control(version: &str) -> Result<String> {
    Ok(format!(
        "Package: enetstat\n\
         Version: {version}\n\
         Architecture: amd64\n\
         Maintainer: enetstat developers <enetstat@localhost>\n\
         Depends: libc6 (>= {glibc})\n\
         Section: net\n\
         Priority: optional\n\
         Description: netstat on eBPF, with a live TCP state-change log and Prometheus metrics\n \
         The netstat listing from /proc, plus kernel programs (Linux 5.10 or later)\n \
         that log every TCP state change, summarise connection storms and serve\n \
         Prometheus metrics. Needs root for the eBPF modes.\n",
        glibc = glibc_version()?
    ))
}

/// The C library this machine builds against: the binary needs at least it.
fn glibc_version() -> Result<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", "libc6"])
        .output()
        .context("running dpkg-query")?;
    let version = String::from_utf8(out.stdout)?;
    // "2.36-9+deb12u4" -> "2.36"
    Ok(version.split('-').next().unwrap_or("2.36").to_string())
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::create_dir_all(path.parent().expect("a directory"))?;
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} failed");
    }
    Ok(())
}
