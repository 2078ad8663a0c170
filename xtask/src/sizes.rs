//! The size limits `cargo xtask lint` holds every crate to: no source file
//! over 600 lines and no function over 80, so that each fits in a reader's
//! head. Reads rustfmt's layout: a function ends at the first `}` on a line
//! of its own at the indentation of its `fn`.

use std::{fs, path::Path};

use anyhow::Result;

use crate::lint::rust_files;

const MAX_FILE_LINES: usize = 600;
const MAX_FUNCTION_LINES: usize = 80;

/// The crates' source trees (tests and benches included).
const TREES: [&str; 5] = [
    "netstat-common/src",
    "netstat-ebpf/src",
    "netstat-userspace/src",
    "xtask/src",
    "tests",
];

/// One line per file or function over its limit, with file and line.
pub fn check(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for tree in TREES {
        for file in rust_files(&root.join(tree))? {
            let text = fs::read_to_string(&file)?;
            let shown = file.strip_prefix(root).unwrap_or(&file).display();
            let lines = text.lines().count();
            if lines > MAX_FILE_LINES {
                problems.push(format!(
                    "{shown}: {lines} lines, over {MAX_FILE_LINES}: split it"
                ));
            }
            for (line, name, length) in long_functions(&text) {
                problems.push(format!(
                    "{shown}:{line}: fn {name} has {length} lines, over {MAX_FUNCTION_LINES}: split it by what it decides"
                ));
            }
        }
    }
    Ok(problems)
}

/// (first line, name, lines) of each function in `text` over the limit.
fn long_functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = function_name(line) else {
            continue;
        };
        let indent = &line[..line.len() - line.trim_start().len()];
        let Some(end) = function_end(&lines[start..], indent) else {
            continue;
        };
        if end + 1 > MAX_FUNCTION_LINES {
            found.push((start + 1, name.to_string(), end + 1));
        }
    }
    found
}

/// The name of the function a line declares, if it does.
fn function_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        match word {
            "fn" => {
                let name = words.next()?;
                let end = name
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(name.len());
                return Some(&name[..end]);
            }
            w if w == "pub"
                || w.starts_with("pub(")
                || ["const", "async", "unsafe", "extern", "\"C\""].contains(&w) => {}
            _ => return None,
        }
    }
    None
}

/// The index (from the `fn` line) of the function's last line; None for a
/// declaration without a body.
fn function_end(lines: &[&str], indent: &str) -> Option<usize> {
    let closing = format!("{indent}}}");
    let mut in_body = false;
    for (i, line) in lines.iter().enumerate() {
        let at_indent =
            line.starts_with(indent) && !line[indent.len()..].starts_with(char::is_whitespace);
        if !in_body && at_indent {
            if line.trim_end().ends_with(';') {
                return None;
            }
            if line.trim_end().ends_with('}') && line.contains('{') {
                return Some(i);
            }
            in_body = line.trim_end().ends_with('{');
        } else if in_body && line.trim_end() == closing {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(lines: usize) -> String {
        "    let x = 1;\n".repeat(lines)
    }

    #[test]
    fn a_long_function_is_found_with_its_line_and_length() {
        let text = format!(
            "fn short() {{\n{}}}\n\npub(crate) fn long(\n    a: u8,\n) -> u8 {{\n{}    if a {{\n    }}\n}}\n",
            body(3),
            body(80)
        );
        assert_eq!(long_functions(&text), [(7, "long".to_string(), 86)]);
    }

    #[test]
    fn declarations_one_liners_and_methods_are_measured_right() {
        let text = format!(
            "trait T {{\n    fn declared(&self);\n}}\nimpl S {{\n    fn one(&self) -> u8 {{ 1 }}\n    pub fn method(&self) {{\n{}    }}\n}}\n",
            body(79)
        );
        assert_eq!(long_functions(&text), [(6, "method".to_string(), 81)]);
    }
}
