//! User-facing failures: one line that names the cause and the fix, and an exit code.

use std::fmt;

/// Exit code for bad usage and for environments the tool cannot work in.
pub const EXIT_USAGE: i32 = 2;

/// An error meant for the user as it is: printed as `enetstat: <message>`,
/// without a chain or backtrace, exiting with `code`.
#[derive(Debug)]
pub struct Fatal {
    pub message: String,
    pub code: i32,
    /// This kernel or this process cannot run the kernel programs (no
    /// privileges, no BTF, a missing facility): `-c` then re-reads /proc.
    pub no_ebpf: bool,
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fatal {}

/// Builds an `anyhow::Error` that `main` prints as one line and exits 2 on.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Fatal {
        message: message.into(),
        code: EXIT_USAGE,
        no_ebpf: false,
    }
    .into()
}

/// As `usage`, for what keeps the kernel programs from running here.
pub fn no_ebpf(message: impl Into<String>) -> anyhow::Error {
    Fatal {
        message: message.into(),
        code: EXIT_USAGE,
        no_ebpf: true,
    }
    .into()
}

/// An error with netstat's exit code for the same mistake (1 for an
/// unknown address family, 3 for conflicting modes).
pub fn with_code(code: i32, message: impl Into<String>) -> anyhow::Error {
    Fatal {
        message: message.into(),
        code,
        no_ebpf: false,
    }
    .into()
}
