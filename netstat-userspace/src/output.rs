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
    fs::{self, File},
    io::{self, BufWriter, StdoutLock, Write},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
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
    out: BufWriter<Target>,
    terminal: bool,
    /// Flush after every write (anything but a regular file).
    per_write: bool,
    /// `--output`'s file, which `rotate` moves aside.
    path: Option<PathBuf>,
    /// Bytes in the file: what it held when opened and what was written.
    size: u64,
}

/// Standard output, or a file of our own (`--output`).
enum Target {
    Stdout(StdoutLock<'static>),
    File(File),
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Target::Stdout(out) => out.write(buf),
            Target::File(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Target::Stdout(out) => out.flush(),
            Target::File(file) => file.flush(),
        }
    }
}

const BUFFER: usize = 1 << 16;

impl Output {
    pub fn stdout() -> Self {
        let stdout = io::stdout();
        let fd = stdout.as_raw_fd();
        Self {
            out: BufWriter::with_capacity(BUFFER, Target::Stdout(stdout.lock())),
            terminal: is_terminal(fd),
            per_write: !is_regular_file(fd),
            path: None,
            size: 0,
        }
    }

    /// `path`, appended to (created if missing).
    pub fn file(path: &Path) -> Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(Self {
            out: BufWriter::with_capacity(BUFFER, Target::File(file)),
            terminal: false,
            per_write: false,
            path: Some(path.to_path_buf()),
            size,
        })
    }

    /// Bytes in the file so far (0 for standard output).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Moves the file aside (FILE to FILE.1, FILE.1 to FILE.2 ..., the
    /// oldest beyond `keep` dropped) and goes on in a new, empty FILE.
    pub fn rotate(&mut self, keep: u32) -> Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        self.out
            .flush()
            .context("writing before rotating the log")?;
        let numbered = |n: u32| {
            let mut name = path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        // Only the files there are move up: a rename per kept slot cost
        // seconds in an emulated guest with --rotate-keep 1000.
        let there = (1..keep).take_while(|&n| numbered(n).exists()).count() as u32;
        for n in (1..=there).rev() {
            fs::rename(numbered(n), numbered(n + 1))
                .with_context(|| format!("rotating {}", numbered(n).display()))?;
        }
        fs::rename(&path, numbered(1)).with_context(|| format!("rotating {}", path.display()))?;
        *self.out.get_mut() = Target::File(open_append(&path)?);
        self.size = 0;
        Ok(())
    }

    /// Whether a person is watching: the live view then redraws in place.
    pub fn is_terminal(&self) -> bool {
        self.terminal
    }

    /// Writes `text`, flushed unless it goes to a regular file; `what` names the output in errors
    /// ("writing the event log: No space left on device").
    pub fn write(&mut self, text: &str, what: &str) -> Result<Reader> {
        let text = printable(text);
        self.size += text.len() as u64;
        let written = self.out.write_all(text.as_bytes());
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

fn open_append(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {} for the log", path.display()))
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
    use super::{Output, printable};

    #[test]
    fn rotation_moves_files_up_and_keeps_as_many_as_asked() {
        let dir = std::env::temp_dir().join(format!("enetstat-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let mut out = Output::file(&path).unwrap();
        for generation in ["a", "b", "c", "d"] {
            let _ = out.write(generation, "the test log").unwrap();
            out.rotate(2).unwrap();
        }
        let _ = out.write_whole("e", "the test log").unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
        assert_eq!(read("log").as_deref(), Some("e"));
        assert_eq!(read("log.1").as_deref(), Some("d"));
        assert_eq!(read("log.2").as_deref(), Some("c"));
        assert_eq!(read("log.3"), None);
        assert_eq!(out.size(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
