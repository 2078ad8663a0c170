//! The one place enetstat writes its results: standard output, whether a
//! terminal, a pipe or a file. It buffers, flushes per write where someone
//! reads as it comes (a terminal or a pipe) and per batch into a regular
//! file (a storm then costs one write per batch, not per event), and turns
//! a closed pipe (`enetstat -E | head`) into a quiet end. Modes hand it
//! finished text; renderers never touch it.
//!
//! The text holds strings any local process chooses (program names, unix
//! socket paths, resolved names), so this is also where control characters
//! other than the newline become `.`, as netstat shows them: nothing written
//! can move the cursor or recolour the reader's terminal. JSON escapes its
//! own and so passes through unchanged.

use std::{
    borrow::Cow,
    io::{self, BufWriter, StdoutLock, Write as _},
    os::fd::AsRawFd as _,
};

use anyhow::{Context as _, Result};

/// Whether anyone still reads what is written: a closed pipe
/// (`enetstat -E | head`) is the reader's way of saying it has enough.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Reading,
    Gone,
}

impl Reader {
    pub fn is_gone(self) -> bool {
        self == Reader::Gone
    }

    /// `next` if the reader is still there (the next write of a sequence).
    pub fn then(self, next: impl FnOnce() -> Result<Reader>) -> Result<Reader> {
        match self {
            Reader::Reading => next(),
            Reader::Gone => Ok(Reader::Gone),
        }
    }
}

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

    /// Writes `text`, flushed unless it goes to a regular file; `what` names the output in errors
    /// ("writing the event log: No space left on device").
    pub fn write(&mut self, text: &str, what: &str) -> Result<Reader> {
        let written = self.out.write_all(printable(text).as_bytes());
        if self.per_write && written.is_ok() {
            return open(self.out.flush(), what);
        }
        open(written, what)
    }

    /// Writes `text` and flushes it even into a regular file: a whole
    /// listing, drawing or summary block that a reader may look at at once.
    pub fn write_whole(&mut self, text: &str, what: &str) -> Result<Reader> {
        self.write(text, what)?.then(|| self.flush(what))
    }

    /// Clears a terminal before a drawing (the next write flushes it).
    pub fn clear_screen(&mut self, what: &str) -> Result<Reader> {
        open(self.out.write_all(b"\x1b[H\x1b[2J"), what)
    }

    /// Flushes what is buffered (the end of a batch, or of the run).
    pub fn flush(&mut self, what: &str) -> Result<Reader> {
        open(self.out.flush(), what)
    }
}

/// `text` with every control character but the newline (C0, DEL and C1,
/// which some terminals obey too) shown as `.`.
fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n';
    // C1 controls are U+0080..U+009F, encoded 0xC2 0x80..0x9F: a byte scan
    // finds every candidate without decoding.
    // A fold rather than `any`: without early exits the compiler scans
    // the line many bytes at a time (it was a fifth of -E's CPU).
    let maybe = text.bytes().fold(false, |found, b| {
        found | ((b < 0x20) & (b != b'\n')) | (b == 0x7f) | (b == 0xc2)
    });
    if !maybe || !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if unsafe_char(c) { '.' } else { c })
            .collect(),
    )
}

fn open(result: io::Result<()>, what: &str) -> Result<Reader> {
    match result {
        Ok(()) => Ok(Reader::Reading),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Reader::Gone),
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

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_become_dots_and_the_rest_stays() {
        assert_eq!(printable("tcp  1/sshd\n"), "tcp  1/sshd\n");
        assert_eq!(printable("\x1b[2J\x1b[31mEVIL\n"), ".[2J.[31mEVIL\n");
        assert_eq!(printable("a\tb\rc\x7fd\u{9b}e\n"), "a.b.c.d.e\n");
        // Printable characters above U+007F, U+FFFD for invalid bytes included.
        assert_eq!(
            printable("caf\u{e9} \u{a0}ok\u{fffd}"),
            "caf\u{e9} \u{a0}ok\u{fffd}"
        );
    }
}
