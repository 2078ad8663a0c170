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

/// `value` seconds of option `name` as a duration: a one-line usage error
/// (exit 2) for NaN, infinite, zero or negative, too large or below `min`
/// values.
pub fn seconds(name: &str, value: f64, min: f64) -> anyhow::Result<std::time::Duration> {
    // About 31 years: anything longer is a typo, not a plan.
    const MAX: f64 = 1e9;
    match std::time::Duration::try_from_secs_f64(value) {
        Ok(d) if value >= min && value > 0.0 && value <= MAX => Ok(d),
        _ if min > 0.0 => Err(usage(format!(
            "invalid {name} {value}: use at least {min} and at most {MAX} seconds"
        ))),
        _ => Err(usage(format!(
            "invalid {name} {value}: use more than 0 and at most {MAX} seconds"
        ))),
    }
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
