//! Who owns which socket, from /proc: socket inode -> process, by walking
//! /proc/<pid>/fd the way netstat -p does.

use std::{net::SocketAddr, rc::Rc};

use foldhash::HashMap;

use crate::{
    procnet::{self, sockets::InetSocket},
    tcp_state::TcpState,
};

/// A socket's owning process as netstat shows it: pid and program name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    pub fn pid_of(&self, inode: u64) -> Option<u32> {
        self.by_inode.get(&inode).map(|o| o.pid)
    }

    /// Walks /proc/<pid>/fd like netstat -p: the first process (in /proc
    /// order) holding a socket owns it.
    pub fn scan() -> Self {
        let mut owners = Self::default();
        let Ok(processes) = procfs::process::all_processes() else {
            owners.incomplete = true;
            return owners;
        };
        for process in processes.flatten() {
            let mut program = None;
            let complete = for_each_socket(process.pid, |inode| {
                let program =
                    program.get_or_insert_with(|| Rc::<str>::from(program_name(&process)));
                owners.by_inode.entry(inode).or_insert_with(|| Owner {
                    pid: process.pid as u32,
                    program: program.clone(),
                });
            });
            owners.incomplete |= !complete;
        }
        owners
    }
}

/// Calls `found` with the inode of each socket among `pid`'s open files;
/// false if the list of them was unreadable (another user's process,
/// without CAP_DAC_READ_SEARCH). As netstat, a link that cannot be read
/// (without CAP_SYS_PTRACE) is passed over: its row shows `-`.
fn for_each_socket(pid: i32, mut found: impl FnMut(u64)) -> bool {
    let entries = match std::fs::read_dir(format!("/proc/{pid}/fd")) {
        Ok(entries) => entries,
        Err(e) => return e.kind() != std::io::ErrorKind::PermissionDenied,
    };
    for entry in entries.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let inode = target
            .to_str()
            .and_then(|t| t.strip_prefix("socket:["))
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse().ok());
        if let Some(inode) = inode {
            found(inode);
        }
    }
    true
}

/// netstat's program name: argv[0] (control characters shown as `.`), cut
/// to its last path component only when it is an absolute path; empty for
/// kernel threads.
fn program_name(process: &procfs::process::Process) -> String {
    let raw = std::fs::read(format!("/proc/{}/cmdline", process.pid)).unwrap_or_default();
    // netstat reads at most 511 bytes of the command line.
    let raw = &raw[..raw.len().min(511)];
    let argv0 = raw.split(|&b| b == 0).next().unwrap_or_default();
    let argv0: String = argv0
        .iter()
        .map(|&b| {
            if (b' '..=b'~').contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    match argv0.strip_prefix('/') {
        Some(_) => argv0.rsplit('/').next().unwrap_or_default().to_string(),
        None => argv0,
    }
}

/// Owners of the TCP sockets that existed at start-up, for events on sockets
/// the kernel side never saw a syscall-context transition of.
#[derive(Debug, Default)]
pub struct TcpOwners {
    by_tuple: HashMap<(SocketAddr, SocketAddr), Owner>,
    /// Every socket of the snapshot, owned or not, and its state then.
    states: HashMap<(SocketAddr, SocketAddr), u8>,
    /// Listening port -> owner: children of listeners opened before start-up.
    listeners: HashMap<u16, Owner>,
    /// Some processes' fds were unreadable (`InodeOwners::incomplete`).
    pub incomplete: bool,
}

impl TcpOwners {
    /// Snapshot of this network namespace's TCP sockets and their owners.
    /// Best effort: an unreadable or malformed file only leaves owners out.
    pub fn scan() -> Self {
        let sockets: Vec<InetSocket> = ["/proc/net/tcp", "/proc/net/tcp6"]
            .into_iter()
            .filter_map(|path| {
                let text = procnet::read_optional(path).ok()??;
                procnet::sockets::parse(&text, path).ok()
            })
            .flatten()
            .collect();
        Self::new(&InodeOwners::scan(), &sockets)
    }

    /// The owners of `sockets`, from an inode scan taken with them.
    pub fn new(inodes: &InodeOwners, sockets: &[InetSocket]) -> Self {
        let mut owners = Self {
            incomplete: inodes.incomplete,
            ..Self::default()
        };
        owners.states.reserve(sockets.len());
        for socket in sockets {
            owners
                .states
                .insert((socket.local, socket.remote), socket.state);
            let Some(owner) = inodes.by_inode.get(&socket.inode) else {
                continue;
            };
            if socket.state == TcpState::LISTEN.0 {
                owners.listeners.insert(socket.local.port(), owner.clone());
            }
            owners
                .by_tuple
                .insert((socket.local, socket.remote), owner.clone());
        }
        owners
    }

    /// Whether the socket `local`-`remote` was there at start-up, in `state`.
    pub fn was_in(&self, local: SocketAddr, remote: SocketAddr, state: u8) -> bool {
        self.states.get(&(local, remote)) == Some(&state)
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
