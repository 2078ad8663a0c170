//! The one place enetstat writes its results: standard output, whether a
//! terminal, a pipe or a file. It buffers, flushes per write where someone
//! reads as it comes (a terminal or a pipe) and per batch into a regular
//! file (a storm then costs one write per batch, not per event), and turns
//! a closed pipe (`enetstat -E | head`) into a quiet end. Modes hand it
//! finished text; renderers never touch it.

use std::{
    io::{self, BufWriter, StdoutLock, Write as _},
    os::fd::AsRawFd as _,
};

use anyhow::{Context as _, Result};

pub struct Output {
    out: BufWriter<StdoutLock<'static>>,
    terminal: bool,
    /// Flush after every write (anything but a regular file).
    per_write: bool,
}

impl Output {
    pub fn stdout() -> Self {
        let stdout = io::stdout();
        let fd = stdout.as_raw_fd();
        Self {
            out: BufWriter::with_capacity(1 << 16, stdout.lock()),
            terminal: is_terminal(fd),
            per_write: !is_regular_file(fd),
        }
    }

    /// Whether a person is watching: the live view then redraws in place.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Writes `text`, flushed unless it goes to a regular file. Ok(false)
    /// when the reader has gone away; `what` names the output in errors
    /// ("writing the event log: No space left on device").
    pub fn write(&mut self, text: &str, what: &str) -> Result<bool> {
        let written = self.out.write_all(text.as_bytes());
        if self.per_write && written.is_ok() {
            return open(self.out.flush(), what);
        }
        open(written, what)
    }

    /// Writes `text` and flushes it even into a regular file: a whole
    /// listing, drawing or summary block that a reader may look at at once.
    pub fn write_whole(&mut self, text: &str, what: &str) -> Result<bool> {
        Ok(self.write(text, what)? && self.flush(what)?)
    }

    /// Flushes what is buffered (the end of a batch, or of the run).
    pub fn flush(&mut self, what: &str) -> Result<bool> {
        open(self.out.flush(), what)
    }
}

/// A closed pipe is the reader's way of saying it has enough.
fn open(result: io::Result<()>, what: &str) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).with_context(|| format!("writing {what}")),
    }
}

fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn is_regular_file(fd: i32) -> bool {
    // SAFETY: fstat only writes into the stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to our stat buffer.
    unsafe { libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG }
}
