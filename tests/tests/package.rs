//! The package `cargo xtask dist` builds (and `cargo xtask test` builds
//! before the tests): its contents, unpacked into a scratch root with
//! `dpkg -x` so the machine's own /usr is left alone, and its binary run on
//! the kernel the tests run on, with no toolchain involved.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use tests::{Netns, Tracer, as_nobody, kernel_before, serve, sh};

/// The newest .deb in target/dist.
fn deb() -> PathBuf {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dist");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dist)
        .unwrap_or_else(|e| panic!("{}: {e} (cargo xtask dist builds it)", dist.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop()
        .unwrap_or_else(|| panic!("no .deb in {} (cargo xtask dist)", dist.display()))
}

/// The package unpacked into a directory of its own (removed on drop).
struct Unpacked(PathBuf);

impl Unpacked {
    fn new(tag: &str) -> Self {
        let root = std::env::temp_dir().join(format!("enetstat-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        sh(
            "dpkg",
            &["-x", deb().to_str().unwrap(), root.to_str().unwrap()],
        );
        Self(root)
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.0.join(inside)
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_deb_holds_the_binary_man_page_completions_and_a_disabled_unit() {
    let deb = deb();
    let deb = deb.to_str().unwrap();
    let fields = sh("dpkg-deb", &["-f", deb, "Package", "Architecture"]);
    assert_eq!(fields, "Package: enetstat\nArchitecture: amd64\n");
    let root = Unpacked::new("package");

    let version = sh(root.path("usr/bin/enetstat").to_str().unwrap(), &["-V"]);
    let packaged = sh("dpkg-deb", &["-f", deb, "Version"]);
    assert_eq!(
        version.trim(),
        format!(
            "enetstat {}",
            packaged.trim().trim_start_matches("Version: ")
        )
    );

    man_page_has_its_sections(&root);
    completions_load_and_offer_values(&root);
    unit_is_installed_not_enabled(&root, deb);
}

/// The man page renders, written for people: beyond the options, the
/// modes, exit status, JSON fields, metric names and examples.
fn man_page_has_its_sections(root: &Unpacked) {
    let man = Command::new("man")
        .arg("-l")
        .arg(root.path("usr/share/man/man8/enetstat.8.gz"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        .expect("man (man-db)");
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.status.success(),
        "{}",
        String::from_utf8_lossy(&man.stderr)
    );
    // man justifies lines: compare with single spaces.
    let words = page.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("NAME enetstat - netstat on eBPF"), "{page}");
    assert!(page.contains("--metrics"), "{page}");
    for section in [
        "MODES",
        "EXIT STATUS",
        "EVENT LOG JSON",
        "METRICS",
        "EXAMPLES",
    ] {
        assert!(page.lines().any(|l| l == section), "{section}:\n{page}");
    }
}

fn completions_load_and_offer_values(root: &Unpacked) {
    // Each shell's completion loads in that shell's syntax.
    let bash = root.path("usr/share/bash-completion/completions/enetstat");
    let loaded = sh(
        "bash",
        &[
            "-c",
            &format!("source {} && complete -p enetstat", bash.display()),
        ],
    );
    assert!(loaded.contains("enetstat"), "{loaded}");
    // Real values where an option has them; nothing of the packaging hook.
    let offered = |line: &str| {
        sh(
            "bash",
            &[
                "-c",
                &format!(
                    "source {} && COMP_WORDS=({line}) && COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)) && \
                     _enetstat enetstat \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\" && echo \"${{COMPREPLY[@]}}\"",
                    bash.display()
                ),
            ],
        )
    };
    assert_eq!(offered("enetstat --state TIME").trim(), "TIME_WAIT");
    assert_eq!(offered("enetstat -A inet").trim(), "inet inet6");
    assert!(
        offered("enetstat --netns a")
            .split_whitespace()
            .any(|w| w == "all")
    );
    assert_eq!(offered("enetstat --gen").trim(), "");
    for (file, needle) in [
        (
            "usr/share/zsh/vendor-completions/_enetstat",
            "#compdef enetstat",
        ),
        (
            "usr/share/fish/vendor_completions.d/enetstat.fish",
            "complete -c enetstat",
        ),
    ] {
        let text = std::fs::read_to_string(root.path(file)).unwrap();
        assert!(text.contains(needle), "{file}");
    }
}

/// The unit and the docs the README links are in place, and no
/// maintainer script enables the unit.
fn unit_is_installed_not_enabled(root: &Unpacked, deb: &str) {
    // Installed, not enabled: no maintainer script, no wants/ link.
    let unit = std::fs::read_to_string(root.path(UNIT)).expect("the metrics unit");
    assert!(
        unit.lines()
            .any(|l| l == "ExecStart=/usr/bin/enetstat $ENETSTAT_METRICS_ARGS"),
        "{unit}"
    );
    // The docs the README links, where its links lead.
    for link in [
        "docs/ARCHITECTURE.md",
        "docs/KERNELS.md",
        "bench/RESULTS.md",
    ] {
        let doc = root.path(&format!("usr/share/doc/enetstat/{link}"));
        assert!(doc.is_file(), "{}", doc.display());
    }
    let control = sh(
        "dpkg-deb",
        &["-e", deb, root.path("DEBIAN").to_str().unwrap()],
    );
    assert_eq!(control, "");
    let scripts: Vec<String> = std::fs::read_dir(root.path("DEBIAN"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        scripts,
        ["control"],
        "maintainer scripts would enable the unit"
    );
}

const UNIT: &str = "lib/systemd/system/enetstat-metrics.service";
const LOG_UNIT: &str = "lib/systemd/system/enetstat-log.service";

/// The unit's `ExecStart=` as systemd runs it: its `$VAR`s from
/// `Environment=`, then `file` (a line of /etc/default/enetstat).
fn command_line(unit: &str, file: Option<&str>) -> Vec<String> {
    // Environment= first, then the file, as systemd applies them.
    let mut env = assignments(
        unit.lines()
            .filter_map(|l| l.strip_prefix("Environment="))
            .map(|l| l.trim_matches('"')),
    );
    env.extend(assignments(file.into_iter()));
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let mut words: Vec<String> = Vec::new();
    for word in exec.split_whitespace() {
        match word.strip_prefix('$') {
            // $VAR (no braces): split at blanks into words.
            Some(var) => {
                let (_, value) = env.iter().rev().find(|(k, _)| k == var).expect(var);
                words.extend(value.split_whitespace().map(str::to_string));
            }
            None => words.push(word.to_string()),
        }
    }
    words
}

/// `KEY=VALUE` lines as systemd reads them (a quoted value loses its quotes).
fn assignments<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// What the unit's process runs as: `prlimit` for its `LimitMEMLOCK=`
/// where the kernel charges BPF maps to it (before 5.11; elsewhere the
/// limit is not enetstat's concern, and raising it takes a capability the
/// development machine's root lacks), then `setpriv` as nobody (for `DynamicUser=`) with its
/// `AmbientCapabilities=`, which must equal its bounding set.
fn as_the_unit_runs(unit: &str) -> Vec<String> {
    let setting = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {unit}"))
    };
    assert_eq!(setting("DynamicUser="), "yes");
    let ambient = setting("AmbientCapabilities=");
    assert_eq!(setting("CapabilityBoundingSet="), ambient);
    let caps: Vec<String> = ambient
        .split_whitespace()
        .map(|c| c.strip_prefix("CAP_").expect(c).to_lowercase())
        .collect();
    let memlock = match setting("LimitMEMLOCK=") {
        "infinity" => "unlimited",
        bytes => bytes,
    };
    let mut wrapper = match kernel_before(5, 11) {
        true => vec![
            "prlimit".to_string(),
            format!("--memlock={memlock}:{memlock}"),
        ],
        false => Vec::new(),
    };
    wrapper.extend(as_nobody(
        &caps.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    wrapper
}

#[test]
fn every_shipped_unit_rates_4_or_better_in_systemd_analyze_security() {
    let root = Unpacked::new("package-security");
    let units: Vec<PathBuf> = std::fs::read_dir(root.path("lib/systemd/system"))
        .expect("the units")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "service"))
        .collect();
    assert!(!units.is_empty());
    for unit in units {
        // Exposure on systemd's scale of 0-100: 4.0 is 40.
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=40"])
            .arg(&unit)
            .output()
            .expect("systemd-analyze");
        assert!(
            out.status.success(),
            "{}: {}",
            unit.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The README's fleet recipe as far as a test can run it: its
/// /etc/default/enetstat line, read by the unit's command line as systemd
/// would expand it and run as the unit runs it (its user, capabilities and
/// limits), must serve on every interface (127.0.0.2 here).
#[test]
fn the_fleet_recipe_serves_on_every_interface() {
    let root = Unpacked::new("package-fleet");
    let unit = std::fs::read_to_string(root.path(UNIT)).expect("the metrics unit");
    let readme = include_str!("../../README.md");
    let recipe = readme
        .lines()
        .find_map(|l| {
            l.strip_prefix("echo '")?
                .split_once("' > /etc/default/enetstat")
        })
        .expect("the README's /etc/default/enetstat line")
        .0;
    let words = command_line(&unit, Some(recipe));
    assert_eq!(words[0], "/usr/bin/enetstat", "{words:?}");
    assert!(
        unit.contains("EnvironmentFile=-/etc/default/enetstat"),
        "{unit}"
    );
    let ns = Netns::new("package-fleet");
    let binary = root.path("usr/bin/enetstat");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let tracer = Tracer::start_wrapped(&ns, &as_the_unit_runs(&unit), &binary, &args);
    let body = tests::scrape::scrape(&ns, "127.0.0.2:9977");
    assert!(body.contains("enetstat_connections_opened_total"), "{body}");
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
}

/// The log unit's command line, run as the unit runs it with `%L` (the
/// logs root) in a scratch directory, writes a self-contained log that
/// replays.
#[test]
fn the_log_unit_writes_a_log_that_replays() {
    let root = Unpacked::new("package-log");
    let unit = std::fs::read_to_string(root.path(LOG_UNIT)).expect("the log unit");
    assert!(unit.contains("LogsDirectory=enetstat"), "{unit}");
    // What LogsDirectory= makes: the directory, the unit's user's.
    let logs = root.path("var/log");
    let dir = logs.join("enetstat");
    std::fs::create_dir_all(&dir).unwrap();
    sh("chown", &["65534:65534", dir.to_str().unwrap()]);
    let words: Vec<String> = command_line(&unit, None)
        .into_iter()
        .map(|w| w.replace("%L", logs.to_str().unwrap()))
        .collect();
    assert_eq!(words[0], "/usr/bin/enetstat", "{words:?}");
    let ns = Netns::new("package-log");
    let binary = root.path("usr/bin/enetstat");
    let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
    let tracer = Tracer::start_wrapped(&ns, &as_the_unit_runs(&unit), &binary, &args);
    drop(serve(&ns, "127.0.0.1:8000", &[]));
    std::thread::sleep(tests::slowed(std::time::Duration::from_secs(1)));
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    let log = dir.join("events.ndjson");
    let text = std::fs::read_to_string(&log).expect("the log");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect();
    assert_eq!(records[0]["event"], "log", "{text}");
    assert!(
        records.iter().any(|r| r["event"] == "snapshot_end"),
        "{text}"
    );
    let listened = records
        .iter()
        .any(|r| r["new_state"] == "LISTEN" && r["local"] == "127.0.0.1:8000");
    assert!(listened, "{text}");
    let replay = sh(
        binary.to_str().unwrap(),
        &["--replay", log.to_str().unwrap(), "-tan"],
    );
    assert!(replay.starts_with("(enetstat: replayed from "), "{replay}");
}

#[test]
fn the_packaged_binary_traces_on_this_kernel() {
    let root = Unpacked::new("package-run");
    let ns = Netns::new("package-run");
    let binary = root.path("usr/bin/enetstat");
    let tracer = Tracer::start_program(&ns, &binary, &["-E", "-n", "--json"]);
    drop(serve(&ns, "127.0.0.1:8000", &[]));
    tracer.wait_quiet();
    let out = tracer.stop();
    assert!(out.status.success(), "{:?}", out.stderr);
    let listened = out
        .events()
        .into_iter()
        .any(|e| e["new_state"] == "LISTEN" && e["local"] == "127.0.0.1:8000");
    assert!(listened, "{}", out.stdout);
}
