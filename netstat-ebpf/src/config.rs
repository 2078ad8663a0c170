//! What userspace fills in before load: struct offsets, the filter, the
//! namespace, the mode.

use netstat_common::{Config, Filter};

/// Filled in by userspace before load (struct offsets, filter, namespace).
#[unsafe(no_mangle)]
pub(crate) static CONFIG: Config = Config::ZERO;

/// Reads a `CONFIG` field. Volatile, because the compiler would otherwise fold
/// the zero initialiser into the code before userspace gets to fill it in.
#[inline(always)]
pub(crate) fn cfg<T: Copy>(field: &T) -> T {
    // SAFETY: `field` is a reference into CONFIG, valid and aligned.
    unsafe { core::ptr::read_volatile(field) }
}

/// The user's filter, read in place (a copy would cost 48 bytes of the
/// 512-byte stack); the volatile pointer read keeps the compiler from folding
/// the zero initialiser, as in `cfg`.
#[inline(always)]
pub(crate) fn filter() -> &'static Filter {
    let at: *const Filter = &CONFIG.filter;
    // SAFETY: `at` points at CONFIG.filter, which lives for the program.
    unsafe { &*core::ptr::read_volatile(&at) }
}
