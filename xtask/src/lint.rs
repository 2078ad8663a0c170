//! `cargo xtask lint`: formatting, clippy with warnings as errors on every
//! crate (the kernel crate with its pinned nightly), the userspace layers
//! of `netstat-userspace/layers.txt`, the module paths docs/ARCHITECTURE.md
//! names, and the size limits of sizes.rs.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::workspace_root;

pub fn run() -> Result<()> {
    let root = workspace_root();
    let mut failed = Vec::new();
    for (what, dir, args) in [
        ("rustfmt", root.clone(), vec!["fmt", "--all", "--check"]),
        (
            "clippy",
            root.clone(),
            vec![
                "clippy",
                "--release",
                "-p",
                "netstat-userspace",
                "-p",
                "netstat-common",
                "-p",
                "xtask",
                "-p",
                "tests",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        // The kernel crate's own toolchain (rust-toolchain.toml) and target.
        (
            "clippy (kernel crate)",
            root.join("netstat-ebpf"),
            vec![
                "clippy",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ] {
        println!("xtask lint: {what}: cargo {}", args.join(" "));
        // The kernel crate's directory picks its toolchain only without
        // the outer cargo's overrides.
        let status = Command::new("cargo")
            .args(&args)
            .current_dir(&dir)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .status()
            .with_context(|| format!("running cargo for {what}"))?;
        if !status.success() {
            failed.push(what);
        }
    }
    let src = root.join("netstat-userspace/src");
    let layers = Layers::parse(&fs::read_to_string(
        root.join("netstat-userspace/layers.txt"),
    )?)?;
    let mut problems = layers.check(&src)?;
    problems.extend(architecture_paths(&root)?);
    problems.extend(crate::sizes::check(&root)?);
    for problem in &problems {
        println!("{problem}");
    }
    if !problems.is_empty() {
        failed.push("layers, docs and sizes");
    }
    if !failed.is_empty() {
        bail!("lint failed: {}", failed.join(", "));
    }
    println!("xtask lint: all clean");
    Ok(())
}

/// The layers, lowest first: each module's layer, and which are exclusive.
struct Layers {
    /// Module -> (layer index, layer name, exclusive).
    of: HashMap<String, (usize, String, bool)>,
}

impl Layers {
    fn parse(text: &str) -> Result<Self> {
        let mut of = HashMap::new();
        let lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        for (index, line) in lines.enumerate() {
            let (head, modules) = line
                .split_once(':')
                .with_context(|| format!("layers.txt: no ':' in {line:?}"))?;
            let mut head = head.split_whitespace();
            let name = head.next().context("layers.txt: a layer without a name")?;
            let exclusive = head.next() == Some("exclusive");
            for module in modules.split_whitespace() {
                of.insert(module.to_string(), (index, name.to_string(), exclusive));
            }
        }
        Ok(Self { of })
    }

    /// Every import that goes up a layer or between the modules of an
    /// exclusive layer, as `file:line: ...`.
    fn check(&self, src: &Path) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for file in rust_files(src)? {
            let relative = file.strip_prefix(src).unwrap_or(&file);
            let module = relative
                .components()
                .next()
                .and_then(|c| c.as_os_str().to_str())
                .map(|m| m.trim_end_matches(".rs").to_string())
                .unwrap_or_default();
            let shown = Path::new("netstat-userspace/src").join(relative);
            let Some((layer, name, exclusive)) = self.of.get(&module) else {
                problems.push(format!(
                    "{}:1: module `{module}` is in no layer of netstat-userspace/layers.txt",
                    shown.display()
                ));
                continue;
            };
            let text = fs::read_to_string(&file)?;
            for (line, imported) in crate_imports(&text) {
                if imported == module {
                    continue;
                }
                let Some((their_layer, their_name, _)) = self.of.get(&imported) else {
                    continue;
                };
                let problem = if their_layer > layer {
                    format!("imports `{imported}` from layer `{their_name}`, above `{name}`")
                } else if their_layer == layer && *exclusive {
                    format!(
                        "imports `{imported}`: the `{name}` layer's modules may not import one another"
                    )
                } else {
                    continue;
                };
                problems.push(format!("{}:{line}: `{module}` {problem}", shown.display()));
            }
        }
        Ok(problems)
    }
}

/// The `.rs` files below `dir`, sorted.
pub fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(rust_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// (line, top-level module) of each `crate::` path in `text` before its
/// first `#[cfg(test)]`, `use crate::{a, b::c}` groups included.
fn crate_imports(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let mut found = Vec::new();
    let mut rest = code;
    let mut offset = 0;
    while let Some(at) = rest.find("crate::") {
        let start = offset + at + "crate::".len();
        let after = &code[start..];
        if let Some(group) = after.strip_prefix('{') {
            // Top-level items of the group, each with its own line.
            let mut depth = 0;
            let mut item_start = start + 1;
            for (i, ch) in group.char_indices() {
                let here = start + 1 + i;
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        push_item(code, item_start, here, &mut found);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        push_item(code, item_start, here, &mut found);
                        item_start = here + 1;
                    }
                    _ => {}
                }
            }
        } else {
            push_item(code, start, start + identifier_len(after), &mut found);
        }
        offset = start;
        rest = &code[start..];
    }
    found
}

fn identifier_len(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len())
}

fn push_item(code: &str, from: usize, to: usize, found: &mut Vec<(usize, String)>) {
    let item = &code[from..to];
    let trimmed = item.trim_start();
    let name = &trimmed[..identifier_len(trimmed)];
    if !name.is_empty() && name != "self" {
        let at = from + (item.len() - trimmed.len());
        let line = code[..at].matches('\n').count() + 1;
        found.push((line, name.to_string()));
    }
}

/// Each `path.rs` or `dir/` that docs/ARCHITECTURE.md names in backquotes
/// must exist in a crate's src (or from the root).
fn architecture_paths(root: &Path) -> Result<Vec<String>> {
    let doc = "docs/ARCHITECTURE.md";
    let text = fs::read_to_string(root.join(doc))?;
    let crates = [
        "netstat-userspace/src",
        "netstat-ebpf/src",
        "netstat-common/src",
        "xtask/src",
        "tests/src",
        "tests",
    ];
    let mut problems = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, quoted) in line.split('`').enumerate() {
            let named = i % 2 == 1
                && !quoted.contains(' ')
                && (quoted.ends_with(".rs") || (quoted.ends_with('/') && quoted.len() > 1));
            if !named {
                continue;
            }
            let exists = root.join(quoted).exists()
                || crates.iter().any(|c| root.join(c).join(quoted).exists());
            if !exists {
                problems.push(format!(
                    "{doc}:{}: `{quoted}` names no file or directory",
                    n + 1
                ));
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    #[test]
    fn imports_are_found_with_their_lines() {
        let text = "use crate::{\n    cli::Cli,\n    render::{a, b},\n};\nfn f() { crate::fail::usage(); }\n#[cfg(test)]\nuse crate::live;\n";
        assert_eq!(
            super::crate_imports(text),
            [(2, "cli".into()), (3, "render".into()), (5, "fail".into())]
        );
    }

    #[test]
    fn an_upward_import_is_named_with_file_and_line() {
        let dir = std::env::temp_dir().join(format!("lint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fail.rs"), "use crate::cli::Cli;\n").unwrap();
        std::fs::write(dir.join("cli.rs"), "use crate::fail;\n").unwrap();
        let layers = super::Layers::parse("base: fail\ncommand: cli\n").unwrap();
        let problems = layers.check(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            problems,
            [
                "netstat-userspace/src/fail.rs:1: `fail` imports `cli` from layer `command`, above `base`"
            ]
        );
    }
}
