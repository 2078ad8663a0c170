//! cgroup v2 ids, as the kernel side records them for a socket's owner,
//! turned into paths relative to the cgroup v2 root (as the `0::` line of
//! /proc/PID/cgroup gives them) and into the short names users know:
//! a systemd unit, a container, a pod.
//!
//! A cgroup v2 id is its directory's inode on 64-bit kernels, so a path is
//! found by walking the hierarchy. Where no cgroup v2 hierarchy is mounted
//! (the kernel still files every process under its root), ids stay `id:N`.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    rc::Rc,
    time::{Duration, Instant},
};

/// How often at most the hierarchy is walked again for an unknown id.
const REWALK: Duration = Duration::from_secs(1);

/// Paths of cgroup ids, cached; the hierarchy is walked again when an id
/// not seen yet turns up (at most once a `REWALK`).
pub struct CgroupNames {
    root: Option<PathBuf>,
    by_id: HashMap<u64, Rc<str>>,
    walked: Option<Instant>,
    /// The last id asked for: a storm's events come from one cgroup in
    /// long runs.
    last: Option<(u64, Rc<str>)>,
    /// Cgroups of processes that owned sockets before the tool started.
    by_pid: HashMap<u32, Option<Rc<str>>>,
}

impl Default for CgroupNames {
    fn default() -> Self {
        Self::new()
    }
}

impl CgroupNames {
    pub fn new() -> Self {
        Self {
            root: hierarchy(),
            by_id: HashMap::new(),
            walked: None,
            last: None,
            by_pid: HashMap::new(),
        }
    }

    /// The path of cgroup `id` (`/system.slice/nginx.service`) of which
    /// process `pid` was a member, or `id:N` where no path is known.
    pub fn path(&mut self, id: u64, pid: u32) -> Rc<str> {
        if let Some((last, path)) = &self.last
            && *last == id
        {
            return Rc::clone(path);
        }
        let path = self.lookup(id, pid);
        self.last = Some((id, Rc::clone(&path)));
        path
    }

    /// The cgroup of process `pid` now, cached (None: it is gone).
    pub fn of_process(&mut self, pid: u32) -> Option<Rc<str>> {
        self.by_pid
            .entry(pid)
            .or_insert_with(|| process_cgroup(pid).map(Rc::from))
            .clone()
    }

    fn lookup(&mut self, id: u64, pid: u32) -> Rc<str> {
        if let Some(path) = self.by_id.get(&id) {
            return Rc::clone(path);
        }
        if let Some(root) = &self.root
            && self.walked.is_none_or(|at| at.elapsed() >= REWALK)
        {
            self.walked = Some(Instant::now());
            walk(root, root, &mut self.by_id);
        }
        // Without the hierarchy in view (`ip netns exec` mounts a sysfs of
        // its own over /sys): the process's own line, if it is still there.
        if !self.by_id.contains_key(&id)
            && let Some(path) = process_cgroup(pid)
        {
            self.by_id.insert(id, Rc::from(path));
        }
        Rc::clone(
            self.by_id
                .entry(id)
                .or_insert_with(|| Rc::from(format!("id:{id}"))),
        )
    }
}

/// The cgroup v2 path of process `pid` (the `0::` line of /proc/PID/cgroup).
fn process_cgroup(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_string)
}

/// A member process of each cgroup in `programs` (the kernel side's owner
/// keys), to name a cgroup by where the hierarchy is not in view.
pub fn members<'a>(
    programs: impl Iterator<Item = &'a netstat_common::ProgramKey>,
) -> HashMap<u64, u32> {
    programs.map(|k| (k.cgroup, k.tgid)).collect()
}

/// The directory of the cgroup `path` (relative to the cgroup v2 root, as
/// `--cgroup` takes it) in this process's view; an error says why not.
pub fn find(path: &str) -> Result<PathBuf, String> {
    let Some(root) = hierarchy() else {
        return Err(format!(
            "--cgroup {path}: no cgroup v2 hierarchy is mounted here (see /proc/self/mountinfo); run enetstat where it is, with --netns for another namespace"
        ));
    };
    let dir = root.join(path.trim_start_matches('/'));
    match dir.join("cgroup.procs").is_file() && path.starts_with('/') {
        true => Ok(dir),
        false => Err(format!(
            "--cgroup {path}: not a cgroup under {} (paths start at the cgroup v2 root, as the 0:: line of /proc/PID/cgroup gives them)",
            root.display()
        )),
    }
}

/// The ids of the cgroup at `dir` and of every cgroup below it.
pub fn ids_below(dir: &Path) -> Vec<u64> {
    let mut found = HashMap::new();
    walk(dir, dir, &mut found);
    found.into_keys().collect()
}

/// Records the id (inode) of `dir` and of every cgroup below it.
fn walk(root: &Path, dir: &Path, found: &mut HashMap<u64, Rc<str>>) {
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    let relative = dir.strip_prefix(root).unwrap_or(dir);
    found.insert(meta.ino(), Rc::from(format!("/{}", relative.display())));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &entry.path(), found);
        }
    }
}

/// Where this process can read the cgroup v2 hierarchy: as mounted in its
/// own view, else through init's root (`ip netns exec` mounts a sysfs of
/// its own over /sys, hiding the cgroup mounts below it).
fn hierarchy() -> Option<PathBuf> {
    ["/proc/self", "/proc/1"].iter().find_map(|process| {
        let mountinfo = std::fs::read_to_string(format!("{process}/mountinfo")).ok()?;
        let mount = mount_point(&mountinfo)?;
        let root = match *process {
            "/proc/self" => mount,
            _ => Path::new(process)
                .join("root")
                .join(mount.strip_prefix("/").ok()?),
        };
        root.is_dir().then_some(root)
    })
}

/// The first cgroup v2 mount point in `mountinfo` (`/sys/fs/cgroup` on a
/// unified host, `/sys/fs/cgroup/unified` on a hybrid one).
pub fn mount_point(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        (fs.split_whitespace().next()? == "cgroup2")
            .then(|| mount.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

/// The name a user knows a cgroup by, where one is known: a systemd unit
/// (`nginx.service`), a container (`docker:<12 hex>`), a pod (`pod:<uid>`).
pub fn short_name(path: &str) -> Option<String> {
    let last = path.rsplit('/').next()?;
    let kubernetes = path.contains("/kubepods");
    if let Some(pod) = path.split('/').filter(|_| kubernetes).find_map(|c| {
        let c = c.strip_suffix(".slice").unwrap_or(c);
        c.rsplit_once("-pod")
            .map(|(_, uid)| uid)
            .or_else(|| c.strip_prefix("pod"))
    }) {
        return Some(format!("pod:{}", pod.replace('_', "-")));
    }
    for (prefix, runtime) in [
        ("docker-", "docker"),
        ("cri-containerd-", "containerd"),
        ("crio-", "crio"),
        ("libpod-", "podman"),
    ] {
        if let Some(id) = last
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".scope"))
        {
            return Some(format!("{runtime}:{}", &id[..id.len().min(12)]));
        }
    }
    [".service", ".scope", ".slice"]
        .iter()
        .any(|s| last.ends_with(s))
        .then(|| last.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup2_mount_is_found_on_unified_and_hybrid_hosts() {
        let hybrid = "25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            mount_point(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "30 24 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw\n";
        assert_eq!(mount_point(unified), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(mount_point("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"), None);
    }

    #[test]
    fn units_containers_and_pods_get_their_short_names() {
        let cases = [
            ("/system.slice/nginx.service", Some("nginx.service")),
            (
                "/system.slice/docker-0123456789abcdef0123.scope",
                Some("docker:0123456789ab"),
            ),
            (
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12ab_34cd.slice/cri-containerd-ff.scope",
                Some("pod:12ab-34cd"),
            ),
            (
                "/user.slice/user-0.slice/session-1.scope",
                Some("session-1.scope"),
            ),
            ("/system.slice/podman.service", Some("podman.service")),
            ("/", None),
            ("/enetstat-test", None),
        ];
        for (path, want) in cases {
            assert_eq!(short_name(path).as_deref(), want, "{path}");
        }
    }
}
