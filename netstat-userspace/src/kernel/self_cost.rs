//! What the tracer costs (`--self-cost`): the kernel's own run statistics
//! of our programs, turned on for enetstat's lifetime only
//! (`BPF_ENABLE_STATS`: on while its descriptor is open), and enetstat's
//! own CPU time from `/proc/self/task/*/schedstat`.

use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};

use anyhow::Result;
use aya::programs::ProgramFd;

use crate::{
    cost::{Cost, ProgramCost},
    fail,
};

/// Our attached programs, with the kernel's statistics on.
pub(super) struct SelfCost {
    /// Statistics stay on while this is open.
    _enabled: OwnedFd,
    programs: Vec<(&'static str, ProgramFd)>,
}

impl SelfCost {
    pub(super) fn enable(programs: Vec<(&'static str, ProgramFd)>) -> Result<Self> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        const BPF_STATS_RUN_TIME: u32 = 0;
        // The attribute is the one u32 BPF_ENABLE_STATS reads.
        let mut attr = BPF_STATS_RUN_TIME;
        let fd = bpf(BPF_ENABLE_STATS, &mut attr);
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(fail::usage(match e.raw_os_error() {
                Some(libc::EPERM) => format!(
                    "--self-cost turns on the kernel's program statistics, which needs CAP_SYS_ADMIN ({e}): run enetstat as root, or without --self-cost"
                ),
                _ => format!(
                    "--self-cost: this kernel cannot turn on program statistics (BPF_ENABLE_STATS, Linux 5.8): {e}"
                ),
            }));
        }
        // SAFETY: the kernel just handed us this descriptor.
        let enabled = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Self {
            _enabled: enabled,
            programs,
        })
    }

    pub(super) fn read(&self) -> Result<Cost> {
        let programs = self
            .programs
            .iter()
            .map(|(program, fd)| {
                let info = program_info(fd)?;
                Ok(ProgramCost {
                    program,
                    id: info.id,
                    runs: info.run_cnt,
                    run_ns: info.run_time_ns,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Cost {
            programs,
            user_ns: own_cpu_ns(),
        })
    }
}

/// The kernel's `bpf_prog_info` of a loaded program.
pub(super) fn program_info(program: &ProgramFd) -> Result<aya_obj::generated::bpf_prog_info> {
    let fd = program.as_fd().as_raw_fd();
    // SAFETY: bpf_prog_info is plain data; zero is a valid value.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    #[repr(C)]
    struct InfoByFd {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr = InfoByFd {
        bpf_fd: fd as u32,
        info_len: size_of_val(&info) as u32,
        info: (&raw mut info) as u64,
    };
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    let rc = bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr);
    anyhow::ensure!(
        rc == 0,
        "BPF_OBJ_GET_INFO_BY_FD: {}",
        std::io::Error::last_os_error()
    );
    Ok(info)
}

/// The bpf(2) system call `cmd` with `attr`, whose pointers (if any) point
/// at live buffers of the sizes it gives.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> libc::c_long {
    // SAFETY: `attr` is a live attribute of its type's size, as is all
    // the kernel reads or writes of it.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, size_of::<T>()) }
}

/// Time on CPU of all of this process's threads (schedstat's first field,
/// in ns, finer than /proc/self/stat's ticks).
fn own_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_cpu_time_is_read() {
        assert!(super::own_cpu_ns() > 0);
    }
}
