//! Debian packages fetched without installing them: the matrix's kernel
//! images, from the machine's own apt sources or, for an older Debian
//! release, through a private apt configuration under `target/apt/<suite>`
//! that names the same mirror. The machine's own sources are never changed.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::setup::{output, run, say};

/// Where apt looks for packages: the machine's sources, or one suite of the
/// machine's Debian mirror.
pub struct Apt {
    /// `-o` options pointing apt at the private configuration (none: the
    /// machine's own).
    options: Vec<String>,
}

impl Apt {
    pub fn machine() -> Self {
        Self {
            options: Vec::new(),
        }
    }

    /// `suite` (e.g. `bullseye`) of the Debian mirror the machine's apt
    /// sources use, with its package lists kept under `target/apt/<suite>`.
    pub fn suite(suite: &str) -> Result<Self> {
        let dir = crate::workspace_root().join("target/apt").join(suite);
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let (uri, keyring) = machine_mirror()?;
        let sources = dir.join("sources.list");
        let line = format!("deb [signed-by={keyring}] {uri} {suite} main\n");
        if fs::read_to_string(&sources).ok().as_deref() != Some(line.as_str()) {
            say(&format!(
                "writing {} for Debian {suite} ({uri}; the machine's sources are left alone)",
                sources.display()
            ));
            fs::write(&sources, &line)?;
        }
        let at = |key: &str, path: PathBuf| format!("{key}={}", path.display());
        Ok(Self {
            options: [
                at("Dir::Etc::SourceList", sources),
                "Dir::Etc::SourceParts=/dev/null".to_string(),
                at("Dir::State::Lists", dir.join("lists")),
                at("Dir::Cache", dir.join("cache")),
            ]
            .into_iter()
            .flat_map(|o| ["-o".to_string(), o])
            .collect(),
        })
    }

    fn args<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args: Vec<&str> = self.options.iter().map(String::as_str).collect();
        args.extend_from_slice(rest);
        args
    }

    /// The package `meta` depends on (Debian's kernel metapackages depend
    /// on exactly one image package, the newest of their line); the package
    /// lists are fetched first when they do not know `meta`.
    pub fn newest_dependency(&self, meta: &str) -> Result<String> {
        let depends = || output("apt-cache", &self.args(&["depends", meta]));
        let text = match depends() {
            Some(text) if text.contains("Depends:") => text,
            _ => {
                run("apt-get", &self.args(&["update", "-qq"]), &[])?;
                depends().unwrap_or_default()
            }
        };
        text.lines()
            .find_map(|l| l.trim().strip_prefix("Depends: "))
            .map(|p| p.trim().to_string())
            .with_context(|| format!("apt-cache knows no package {meta}"))
    }

    /// Downloads `package` (without installing it) and unpacks it into
    /// `root`.
    pub fn download_unpack(&self, package: &str, root: &Path) -> Result<()> {
        let dir = root.parent().context("unpack directory has no parent")?;
        say(&format!(
            "downloading {package} (not installed: unpacked under {})",
            dir.display()
        ));
        let status = Command::new("apt-get")
            .args(self.args(&["download", "-qq", package]))
            .current_dir(dir)
            .status()
            .context("running apt-get download")?;
        if !status.success() {
            bail!("`apt-get download {package}` failed");
        }
        let deb = fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with(&format!("{package}_")) && n.ends_with(".deb")
                })
            })
            .with_context(|| format!("apt-get download left no {package}_*.deb"))?;
        let (deb, root) = (deb.to_string_lossy(), root.to_string_lossy());
        run("dpkg-deb", &["-x", &deb, &root], &[])?;
        fs::remove_file(deb.as_ref())?;
        Ok(())
    }
}

/// The Debian mirror of the machine's own release (its URI and keyring),
/// from its apt sources: deb822 `.sources` files or one-line lists.
fn machine_mirror() -> Result<(String, String)> {
    const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let codename = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
                .map(|c| c.trim_matches('"').to_string())
        })
        .context("/etc/os-release names no VERSION_CODENAME: not a Debian release")?;
    let mut texts = vec![fs::read_to_string("/etc/apt/sources.list").unwrap_or_default()];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let name = path.to_string_lossy();
            if name.ends_with(".sources") || name.ends_with(".list") {
                texts.push(fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    texts
        .iter()
        .find_map(|text| mirror_in(text, &codename))
        .map(|(uri, keyring)| (uri, keyring.unwrap_or_else(|| KEYRING.to_string())))
        .with_context(|| format!("the machine's apt sources name no Debian mirror for {codename}"))
}

/// The URI (and keyring, if named) of the first source in `text` that
/// serves `codename` itself (not its -security or -updates suites).
fn mirror_in(text: &str, codename: &str) -> Option<(String, Option<String>)> {
    // One-line form: `deb [options] URI suite components`.
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"deb") {
            continue;
        }
        // Options stand in brackets after `deb`: `[a=b c=d]`.
        let (options, skip) = match words.get(1) {
            Some(w) if w.starts_with('[') => {
                let end = 1 + words[1..].iter().position(|w| w.ends_with(']'))?;
                (&words[1..=end], end + 1)
            }
            _ => (&words[..0], 1),
        };
        let (uri, suite) = (words.get(skip)?, words.get(skip + 1)?);
        if *suite == codename {
            let keyring = options
                .iter()
                .find_map(|o| o.trim_matches(['[', ']']).strip_prefix("signed-by="))
                .map(str::to_string);
            return Some((uri.to_string(), keyring));
        }
    }
    // deb822 form: stanzas of `Key: value` lines.
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
                .map(str::trim)
        };
        let serves = field("Suites").is_some_and(|s| s.split_whitespace().any(|s| s == codename));
        let debs = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if serves && debs {
            let uri = field("URIs")?.split_whitespace().next()?.to_string();
            return Some((uri, field("Signed-By").map(str::to_string)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::mirror_in;

    #[test]
    fn finds_the_release_mirror_in_deb822_sources() {
        let text = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_in(text, "bookworm"),
            Some((
                "http://mirror.example/debian".to_string(),
                Some("/k.gpg".to_string())
            ))
        );
        assert_eq!(mirror_in(text, "bullseye"), None);
    }

    #[test]
    fn finds_the_release_mirror_in_one_line_sources() {
        let text = "# comment\ndeb http://sec.example/debian-security bookworm-security main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            mirror_in(text, "bookworm"),
            Some((
                "http://mirror.example/debian".to_string(),
                Some("/k.gpg".to_string())
            ))
        );
    }
}
