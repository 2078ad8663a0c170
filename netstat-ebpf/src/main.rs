//! Kernel side of enetstat: a pair of BTF-tracepoint programs per tracepoint,
//! turning each TCP event into a `netstat_common::Event` in the `EVENTS` ring
//! buffer.
//!
//! The kernel side only gathers facts. It remembers, per socket, when the socket
//! entered its state and who owns it (captured in syscall context, where the
//! current task really is the owner), because userspace cannot learn either
//! after the fact. Everything else (names, TIME_WAIT inference, formatting) is
//! userspace's job.
//!
//! BTF tracepoints (`tp_btf`), not classic ones: a classic tracepoint formats
//! its whole record before any program can look at it, which alone cost more
//! of a connection storm than the 5% a filtered-out storm may cost. These
//! hand over the C arguments (socket and packet pointers) typed by the
//! kernel's BTF, so that their members are plain loads the verifier checks,
//! at offsets userspace takes from that same BTF.
//!
//! The data flows through the modules in this order: a hook module
//! (`set_state`, `destroy_sock`, `retransmit`, `reset`, `drop`, one per tracepoint
//! family, each naming the kernel function or tracepoint it reads) starts a
//! `pair::Run`, `read` takes what it needs from the kernel's structs,
//! `verdict` applies the namespace and the user's filter, and `report`
//! puts the event in the ring buffer and the counts in `maps`.
#![no_std]
// Map keys and values stay borrowed as aya's API reads them: a by-value
// argument is a stack copy of its own, and 6.1's verifier allows 512 bytes
// of stack over the whole call chain.
#![allow(clippy::needless_borrows_for_generic_args)]
#![no_main]

mod config;
mod destroy_sock;
mod drop;
mod maps;
mod mem;
mod pair;
mod read;
mod report;
mod reset;
mod retransmit;
mod set_state;
mod verdict;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// bpf_probe_read_kernel is only offered to GPL-compatible programs.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
