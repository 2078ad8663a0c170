//! The two programs on each tracepoint and the marks that keep them from
//! reporting an event twice (see `maps::HANDLED`).

use aya_ebpf::EbpfContext;
use netstat_common::counter;

use crate::maps::{HANDLED, MARK_SLOTS, NESTING, NESTING_LEVELS, add_counter};

/// What a mark names: tracepoint id << 16 | old state << 8 | new state
/// (states for inet_sock_set_state only).
pub(crate) mod tp {
    pub const SET_STATE: u64 = 1 << 16;
    pub const DESTROY_SOCK: u64 = 2 << 16;
    pub const RETRANSMIT_SKB: u64 = 3 << 16;
    pub const RETRANSMIT_SYNACK: u64 = 4 << 16;
    pub const SEND_RESET: u64 = 5 << 16;
    pub const RECEIVE_RESET: u64 = 6 << 16;
    /// The fentry programs on tcp_v4_send_reset and tcp_v6_send_reset.
    pub const SEND_RESET_V4: u64 = 7 << 16;
    pub const SEND_RESET_V6: u64 = 8 << 16;
    /// The drop counter on skb:kfree_skb (no mark; a scratch slot only).
    pub const KFREE_SKB: u64 = 9 << 16;
    /// Programs, two per id (`PairRun::slot`): the slots of `NESTING`, and
    /// of each level of `SCRATCH`.
    pub const PROGRAMS: u32 = 2 * 10;

    pub fn set_state(old: u8, new: u8) -> u64 {
        SET_STATE | (old as u64) << 8 | new as u64
    }
}

// ---- The program pairs -------------------------------------------------

/// Which program of a tracepoint's pair is running (see `HANDLED`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    First,
    Second,
    /// A program without a second: it neither leaves nor takes marks.
    Alone,
}

/// What becomes of an event, decided from as few reads as possible before
/// the full report is put together.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not an event we report at all (not TCP, not a change).
    Ignore,
    /// Of a network namespace other than the one asked for.
    OtherNetns,
    /// The user's filter can never want it.
    Filtered,
    /// Report it; the socket is in this network namespace.
    Report { netns: u32 },
}

/// One program's run on one event. The first program acts on every event
/// and marks it; the second acts only on events the first did not mark,
/// because the kernel skipped the first for them. A run decides from as few
/// reads as it can (`Verdict`), and its report applies the whole filter
/// again to the finished event.
pub(crate) struct PairRun {
    role: Role,
    /// (socket, what, invocation): see `HANDLED`.
    mark: (u64, u64, u64),
    /// This program's runs under way on this CPU before this one (0 but
    /// on 5.10, see `SCRATCH`): the level of its scratch slot.
    level: u32,
}

impl PairRun {
    /// Starts a run, or None where there is nothing to do: the second
    /// program took the first's mark.
    #[inline(always)]
    pub(crate) fn begin(
        role: Role,
        ctx: &impl EbpfContext,
        key: u64,
        what: u64,
    ) -> Option<PairRun> {
        let mut run = PairRun {
            role,
            mark: (key, what, ctx.as_ptr() as u64),
            level: 0,
        };
        if role == Role::Second {
            if run.take_mark() {
                return None;
            }
            add_counter(counter::RECOVERED);
        }
        let nesting = NESTING.get_ptr_mut(run.program())?;
        // SAFETY: this CPU's count of this program's runs; a nested run
        // restores it (`Drop`) before the run it interrupted goes on.
        unsafe {
            run.level = *nesting;
            *nesting += 1;
        }
        // A third level cannot happen (see `NESTING_LEVELS`); were it to,
        // the change shows up as a gap rather than as a corrupted event.
        (run.level < NESTING_LEVELS).then_some(run)
    }

    /// This program's index among all programs (`tp::PROGRAMS`).
    #[inline(always)]
    fn program(&self) -> u32 {
        (self.mark.1 >> 16) as u32 * 2 + (self.role == Role::Second) as u32
    }

    /// This run's slot in `SCRATCH`.
    #[inline(always)]
    pub(crate) fn slot(&self) -> u32 {
        self.level * tp::PROGRAMS + self.program()
    }

    /// Acts on the verdict and ends the run; `report` gets the namespace and
    /// the program's event slot.
    #[inline(always)]
    pub(crate) fn finish(self, verdict: Verdict, report: impl FnOnce(u32, u32)) -> i32 {
        match verdict {
            Verdict::Report { netns } => report(netns, self.slot()),
            Verdict::Filtered => add_counter(counter::FILTERED),
            Verdict::OtherNetns => add_counter(counter::OTHER_NETNS),
            Verdict::Ignore => {}
        }
        if self.role == Role::First {
            self.leave_mark();
        }
        0
    }

    /// Ends the first program's run: leaves its mark for the second.
    #[inline(always)]
    fn leave_mark(&self) {
        if self.mark.0 == 0 {
            return;
        }
        if let Some(marks) = HANDLED.get_ptr_mut(0) {
            // SAFETY: this CPU's marks; a pair's two programs run one
            // after the other, never at once on a CPU.
            let marks = unsafe { &mut *marks };
            let at = marks.next as usize % MARK_SLOTS;
            marks.next = marks.next.wrapping_add(1);
            marks.slots[at] = self.mark;
        }
    }

    /// Takes the first program's mark of this event, if it left one.
    #[inline(always)]
    fn take_mark(&self) -> bool {
        if self.mark.0 == 0 {
            return false;
        }
        let Some(marks) = HANDLED.get_ptr_mut(0) else {
            return false;
        };
        // SAFETY: as in `leave_mark`.
        let marks = unsafe { &mut *marks };
        // Nearly always the mark the first program just left: look there
        // before walking every slot.
        let last = marks.next.wrapping_sub(1) as usize % MARK_SLOTS;
        if marks.slots[last] == self.mark {
            marks.slots[last].0 = 0;
            return true;
        }
        for slot in marks.slots.iter_mut() {
            if *slot == self.mark {
                slot.0 = 0;
                return true;
            }
        }
        false
    }
}

impl Drop for PairRun {
    /// However the run ends, it is no longer under way.
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(nesting) = NESTING.get_ptr_mut(self.program()) {
            // SAFETY: as in `begin`.
            unsafe { *nesting = self.level };
        }
    }
}

/// Defines a tracepoint's two programs, `$first` and `$second`, both
/// running `$body(&ctx, role)`.
macro_rules! program_pair {
    ($tracepoint:literal, $first:ident, $second:ident, $body:ident) => {
        #[btf_tracepoint(function = $tracepoint)]
        pub fn $first(ctx: BtfTracePointContext) -> i32 {
            $body(&ctx, Role::First)
        }

        #[btf_tracepoint(function = $tracepoint)]
        pub fn $second(ctx: BtfTracePointContext) -> i32 {
            $body(&ctx, Role::Second)
        }
    };
}

pub(crate) use program_pair;
