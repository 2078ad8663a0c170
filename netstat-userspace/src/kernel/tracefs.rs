//! tracefs: making sure it is mounted, and reading tracepoint record layouts
//! from `events/<category>/<name>/format` so that no offset is hard-coded.

use std::{collections::HashMap, fs, path::Path};

use anyhow::Result;
use netstat_common::{NO_FIELD, TracepointFields};

use crate::fail;

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs at /sys/kernel/tracing when it is not there yet (a fresh
/// machine often has it unmounted). Needs CAP_SYS_ADMIN; without it the error
/// names the command to run.
pub fn ensure_mounted() -> Result<()> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    let target = c"/sys/kernel/tracing";
    let fstype = c"tracefs";
    // SAFETY: valid NUL-terminated strings, no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 || !Path::new(TRACEFS).join("events").is_dir() {
        let err = std::io::Error::last_os_error();
        return Err(fail::usage(format!(
            "tracefs is not mounted and mounting it failed ({err}): run `mount -t tracefs tracefs {TRACEFS}` as root"
        )));
    }
    log::info!("mounted tracefs at {TRACEFS}");
    Ok(())
}

/// One field of a tracepoint record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u16,
    pub size: u16,
}

/// Parses a tracepoint `format` file into field name -> (offset, size).
/// Array fields are named without their `[N]` suffix.
pub fn parse_format(text: &str) -> HashMap<String, Field> {
    let mut fields = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let Some(decl) = parts.next() else { continue };
        let Some(name) = decl.split_whitespace().last() else {
            continue;
        };
        let name = name.split('[').next().unwrap_or(name);
        let mut offset = None;
        let mut size = None;
        for part in parts {
            if let Some(v) = part.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.parse().ok();
            }
        }
        if let (Some(offset), Some(size)) = (offset, size) {
            fields.insert(name.to_string(), Field { offset, size });
        }
    }
    fields
}

/// Reads the layout of `category/name`, failing with a user-facing error when
/// the kernel does not have that tracepoint.
pub fn layout(category: &str, name: &str) -> Result<HashMap<String, Field>> {
    let path = Path::new(TRACEFS)
        .join("events")
        .join(category)
        .join(name)
        .join("format");
    match fs::read_to_string(&path) {
        Ok(text) => Ok(parse_format(&text)),
        Err(e) => Err(fail::usage(format!(
            "this kernel has no tracepoint {category}/{name} ({}: {e}); enetstat needs Linux 5.8 or later with CONFIG_TRACEPOINTS",
            path.display()
        ))),
    }
}

/// Turns a parsed layout into the offsets the kernel programs read. Fields the
/// tracepoint lacks stay `NO_FIELD`; `required` ones must exist with the size
/// the kernel side reads.
pub fn fields_for(
    tracepoint: &str,
    layout: &HashMap<String, Field>,
    required: &[(&str, u16)],
) -> Result<TracepointFields> {
    for (name, size) in required {
        match layout.get(*name) {
            Some(f) if f.size == *size => {}
            Some(f) => {
                return Err(fail::usage(format!(
                    "tracepoint {tracepoint}: field `{name}` is {} bytes, expected {size}; this kernel's layout is not supported",
                    f.size
                )));
            }
            None => {
                return Err(fail::usage(format!(
                    "tracepoint {tracepoint} has no field `{name}`; this kernel's layout is not supported"
                )));
            }
        }
    }
    let at = |name: &str| layout.get(name).map_or(NO_FIELD, |f| f.offset);
    let sockaddr = layout.get("saddr").is_some_and(|f| f.size >= 16);
    Ok(TracepointFields {
        skaddr: at("skaddr"),
        skbaddr: at("skbaddr"),
        oldstate: at("oldstate"),
        newstate: at("newstate"),
        state: at("state"),
        sport: at("sport"),
        dport: at("dport"),
        family: at("family"),
        protocol: at("protocol"),
        saddr: at("saddr"),
        daddr: at("daddr"),
        saddr_v6: at("saddr_v6"),
        daddr_v6: at("daddr_v6"),
        addrs_are_sockaddr: u16::from(sockaddr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET_STATE: &str = "name: inet_sock_set_state
ID: 1234
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;
\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;

print fmt: \"family=%s\", __print_symbolic(REC->family)
";

    #[test]
    fn parses_scalar_pointer_and_array_fields() {
        let f = parse_format(SET_STATE);
        assert_eq!(f["skaddr"], Field { offset: 8, size: 8 });
        assert_eq!(
            f["oldstate"],
            Field {
                offset: 16,
                size: 4
            }
        );
        assert_eq!(
            f["saddr_v6"],
            Field {
                offset: 40,
                size: 16
            }
        );
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn truncated_and_malformed_lines_are_skipped() {
        let f = parse_format(
            "\tfield:int x;\toffset:4;\n\tfield:;\n\tfield:int y;\toffset:zz;\tsize:4;\n",
        );
        assert!(f.is_empty());
    }

    #[test]
    fn missing_and_wrong_sized_fields_are_errors() {
        let f = parse_format(SET_STATE);
        let err = fields_for("x/y", &f, &[("newstate", 4)]).unwrap_err();
        assert!(err.to_string().contains("no field `newstate`"), "{err}");
        let err = fields_for("x/y", &f, &[("oldstate", 2)]).unwrap_err();
        assert!(err.to_string().contains("4 bytes, expected 2"), "{err}");
        let ok = fields_for("x/y", &f, &[("skaddr", 8)]).unwrap();
        assert_eq!(ok.skaddr, 8);
        assert_eq!(ok.sport, NO_FIELD);
        assert_eq!(ok.addrs_are_sockaddr, 0);
    }
}
