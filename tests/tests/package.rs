//! The package `cargo xtask dist` builds (and `cargo xtask test` builds
//! before the tests): its contents, unpacked into a scratch root with
//! `dpkg -x` so the machine's own /usr is left alone, and its binary run on
//! the kernel the tests run on, with no toolchain involved.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use tests::{Netns, Tracer, serve, sh};

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

    // Installed, not enabled: no maintainer script, no wants/ link.
    let unit = std::fs::read_to_string(root.path("lib/systemd/system/enetstat-metrics.service"))
        .expect("the metrics unit");
    assert!(
        unit.lines()
            .any(|l| l == "ExecStart=/usr/bin/enetstat --metrics 127.0.0.1:9977"),
        "{unit}"
    );
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
