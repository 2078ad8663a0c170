//! Network namespaces: which ones `--netns` selects, and entering one to read
//! its /proc/net files (those files show the reading thread's namespace).

use std::{
    collections::BTreeMap,
    fs::File,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use anyhow::Result;

use crate::{capabilities, fail};

/// Where `ip netns add` keeps its namespaces.
const NAMED: &str = "/var/run/netns";
/// Namespace inodes are allocated from here up (PROC_DYNAMIC_FIRST); pids
/// stay far below it, so a number says which of the two it is.
const FIRST_INODE: u64 = 0xF000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The namespace we run in (by default ours; `--netns X` moves the whole
    /// run into X first, so /proc/net and the kernel filter both mean X).
    One(u32),
    All,
}

impl Selection {
    /// Resolves `--netns` and enters the namespace it names.
    pub fn from_cli(arg: Option<&str>) -> Result<Self> {
        let own = own()?;
        let Some(arg) = arg else {
            return Ok(Selection::One(own));
        };
        if arg == "all" {
            return Ok(Selection::All);
        }
        let path = match arg.parse::<u64>() {
            Ok(inode) if inode >= FIRST_INODE => {
                known().remove(&(inode as u32)).ok_or_else(|| {
                    fail::usage(format!(
                        "no network namespace with inode {inode} (see lsns -t net)"
                    ))
                })?
            }
            Ok(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            Err(_) if !arg.contains('/') && !arg.is_empty() => Path::new(NAMED).join(arg),
            Err(_) => {
                return Err(fail::usage(format!(
                    "invalid --netns '{arg}': use a name from {NAMED}, an inode, a pid or all"
                )));
            }
        };
        let inode = inode_of(&path).ok_or_else(|| {
            fail::usage(format!(
                "no network namespace '{arg}': {} does not exist (see ip netns list)",
                path.display()
            ))
        })?;
        if inode != own {
            let file = File::open(&path).map_err(|e| cannot_open(&path, e))?;
            enter(&file, &path)?;
        }
        Ok(Selection::One(inode))
    }

    /// What the event modes say they trace.
    pub fn describe(self) -> String {
        match self {
            Selection::All => "every network namespace".to_string(),
            Selection::One(inode) => format!("network namespace {inode}"),
        }
    }

    /// The inode the kernel programs report (0: every namespace).
    pub fn kernel_filter(self) -> u32 {
        match self {
            Selection::One(inode) => inode,
            Selection::All => 0,
        }
    }

    /// The namespaces to read, each with a file to enter it by (None: ours).
    pub fn members(self) -> Vec<(u32, Option<PathBuf>)> {
        match self {
            Selection::One(inode) => vec![(inode, None)],
            Selection::All => {
                let own = own().unwrap_or(0);
                known()
                    .into_iter()
                    .map(|(inode, path)| (inode, (inode != own).then_some(path)))
                    .collect()
            }
        }
    }
}

/// Inode of this process's network namespace.
pub fn own() -> Result<u32> {
    inode_of(Path::new("/proc/self/ns/net"))
        .ok_or_else(|| anyhow::anyhow!("cannot read /proc/self/ns/net"))
}

fn inode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| m.ino() as u32)
}

/// Every namespace with a name or a process in it, by inode.
fn known() -> BTreeMap<u32, PathBuf> {
    let mut found = BTreeMap::new();
    let named = std::fs::read_dir(NAMED).into_iter().flatten().flatten();
    let processes = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        });
    for path in named
        .map(|e| e.path())
        .chain(processes.map(|e| e.path().join("ns/net")))
    {
        if let Some(inode) = inode_of(&path) {
            found.entry(inode).or_insert(path);
        }
    }
    found
}

/// Runs `read` inside namespace `path` (None: here), then comes back; None
/// when the namespace went away since it was listed (its name deleted, its
/// last process gone), as namespaces do while `--netns all` reads them.
/// The calling thread switches; a listing is single-threaded.
pub fn inside<T>(path: Option<&Path>, read: impl FnOnce() -> Result<T>) -> Result<Option<T>> {
    let Some(path) = path else {
        return read().map(Some);
    };
    let home = File::open("/proc/thread-self/ns/net")?;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot_open(path, e)),
    };
    enter(&file, path)?;
    let result = read().map(Some);
    // SAFETY: setns on an open namespace file.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(anyhow::anyhow!(
            "returning to our network namespace: {}",
            std::io::Error::last_os_error()
        ));
    }
    result
}

fn cannot_open(path: &Path, e: std::io::Error) -> anyhow::Error {
    fail::usage(format!("cannot open {}: {e}", path.display()))
}

fn enter(file: &File, path: &Path) -> Result<()> {
    // SAFETY: setns on an open namespace file.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let error = std::io::Error::last_os_error();
        let what = format!("entering network namespace {}", path.display());
        capabilities::require(&what, &[capabilities::SYS_ADMIN])?;
        return Err(fail::usage(format!(
            "cannot enter network namespace {} ({error})",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--netns all` lists namespaces, then reads each; one deleted in
    /// between is skipped, not an error.
    #[test]
    fn a_namespace_gone_since_listed_is_skipped() {
        let gone = Path::new("/var/run/netns/enetstat-never-made");
        let read = inside(Some(gone), || Ok(1));
        assert!(matches!(read, Ok(None)), "{read:?}");
        assert!(matches!(inside(None, || Ok(1)), Ok(Some(1))));
    }
}
