//! Who owns which socket, from /proc: socket inode -> process, by walking
//! /proc/<pid>/fd the way netstat -p does.

use std::{collections::HashMap, net::SocketAddr, rc::Rc};

use procfs::process::FDTarget;

/// A socket's owning process as netstat shows it: pid and program name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    /// Shared: one process owns many sockets, and events repeat owners.
    pub program: Rc<str>,
}

/// Socket inode -> owner for every process we may look into.
#[derive(Debug, Default)]
pub struct InodeOwners {
    pub by_inode: HashMap<u64, Owner>,
    /// Some processes' fds were unreadable (not root): netstat's
    /// "Not all processes could be identified".
    pub incomplete: bool,
}

impl InodeOwners {
    pub fn scan() -> Self {
        let mut owners = Self::default();
        let Ok(processes) = procfs::process::all_processes() else {
            owners.incomplete = true;
            return owners;
        };
        for process in processes.flatten() {
            let Ok(fds) = process.fd() else {
                // Exited meanwhile, or not ours to read.
                owners.incomplete |= process.uid().is_ok_and(|uid| uid != effective_uid());
                continue;
            };
            let mut program = None;
            for fd in fds.flatten() {
                if let FDTarget::Socket(inode) = fd.target {
                    let program =
                        program.get_or_insert_with(|| Rc::<str>::from(program_name(&process)));
                    owners.by_inode.entry(inode).or_insert_with(|| Owner {
                        pid: process.pid as u32,
                        program: program.clone(),
                    });
                }
            }
        }
        owners
    }
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// netstat's program name: the last path component of argv[0], or the
/// kernel's task name for processes without a command line (kernel threads).
fn program_name(process: &procfs::process::Process) -> String {
    let argv0 = process
        .cmdline()
        .ok()
        .and_then(|args| args.into_iter().next())
        .unwrap_or_default();
    match argv0.rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => process.stat().map(|s| s.comm).unwrap_or_default(),
    }
}

/// Owners of the TCP sockets that existed at start-up, for events on sockets
/// the kernel side never saw a syscall-context transition of.
#[derive(Debug, Default)]
pub struct TcpOwners {
    by_tuple: HashMap<(SocketAddr, SocketAddr), Owner>,
    /// Listening port -> owner: children of listeners opened before start-up.
    listeners: HashMap<u16, Owner>,
}

impl TcpOwners {
    /// Snapshot of this network namespace's TCP sockets and their owners.
    pub fn scan() -> Self {
        let inodes = InodeOwners::scan();
        let mut owners = Self::default();
        let entries = procfs::net::tcp()
            .into_iter()
            .chain(procfs::net::tcp6())
            .flatten();
        for entry in entries {
            let Some(owner) = inodes.by_inode.get(&entry.inode) else {
                continue;
            };
            if entry.state == procfs::net::TcpState::Listen {
                owners
                    .listeners
                    .insert(entry.local_address.port(), owner.clone());
            }
            owners
                .by_tuple
                .insert((entry.local_address, entry.remote_address), owner.clone());
        }
        owners
    }

    /// The owner of the socket `local`-`remote`; failing that, of the listener
    /// on `local`'s port (accepted children share their listener's port, while
    /// outgoing connections cannot use a port that is listened on).
    pub fn lookup(&self, local: SocketAddr, remote: SocketAddr) -> Option<&Owner> {
        self.by_tuple
            .get(&(local, remote))
            .or_else(|| self.listeners.get(&local.port()))
    }
}
