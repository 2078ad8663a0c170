//! A cgroup v2 child made by one test: processes started in it, killed
//! and the cgroup removed on drop.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{Netns, sh};

pub struct Cgroup {
    /// Where the directory is, in this process's view.
    dir: PathBuf,
    /// Relative to the cgroup v2 root, as enetstat prints it.
    pub path: String,
    /// The hierarchy the test mounted itself, unmounted on drop.
    mounted: Option<PathBuf>,
}

impl Cgroup {
    /// A new child of the cgroup v2 root. Where no cgroup v2 hierarchy is
    /// mounted, one is mounted for the test under /tmp.
    pub fn new(tag: &str) -> Self {
        let mut mounted = None;
        let root = mounted_root().unwrap_or_else(|| {
            let at = std::env::temp_dir().join(format!("enetstat-cgroup2-{}", std::process::id()));
            std::fs::create_dir_all(&at).expect("mount point");
            sh("mount", &["-t", "cgroup2", "none", at.to_str().unwrap()]);
            mounted = Some(at.clone());
            at
        });
        let name = format!("enetstat-{tag}-{}", std::process::id());
        let dir = root.join(&name);
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Self {
            dir,
            path: format!("/{name}"),
            mounted,
        }
    }

    /// `program args` run in namespace `ns` by a process of this cgroup.
    pub fn command(&self, ns: &Netns, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"echo $$ > "$0/cgroup.procs" && exec ip netns exec "$@""#)
            .arg(&self.dir)
            .arg(&ns.name)
            .arg(program)
            .args(args);
        cmd
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
        // Bounded: a killed process leaves its cgroup as it exits.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if let Some(at) = &self.mounted {
            let _ = Command::new("umount").arg(at).status();
            let _ = std::fs::remove_dir(at);
        }
    }
}

/// The cgroup v2 mount point this process sees.
fn mounted_root() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        (fs.split_whitespace().next()? == "cgroup2")
            .then(|| mount.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}
