//! Zeroing and copying records a word at a time. For any but the smallest
//! copies the compiler calls its builtin `memset` and `memmove`, which on
//! BPF are loops over single bytes: zeroing an event that way cost more
//! than the rest of a state change's report.

/// `*dst = T::default()` for a record of whole words (all fields zero).
#[inline(always)]
pub(crate) fn zero<T>(dst: &mut T) {
    const { assert!(size_of::<T>().is_multiple_of(8) && align_of::<T>() >= 8) };
    let words = dst as *mut T as *mut u64;
    for i in 0..size_of::<T>() / 8 {
        // SAFETY: inside `*dst`, which is 8-aligned; volatile, so that the
        // compiler does not turn the loop back into a `memset` call.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
}

/// `*dst = *src` for a record of whole words.
#[inline(always)]
pub(crate) fn copy<T: Copy>(dst: &mut T, src: &T) {
    const { assert!(size_of::<T>().is_multiple_of(8) && align_of::<T>() >= 8) };
    let (to, from) = (dst as *mut T as *mut u64, src as *const T as *const u64);
    for i in 0..size_of::<T>() / 8 {
        // SAFETY: both records are 8-aligned and of this many words; as
        // in `zero`, volatile keeps the loop a loop of word copies.
        unsafe { core::ptr::write_volatile(to.add(i), core::ptr::read_volatile(from.add(i))) };
    }
}
