//! The record that says the kernel programs are attached, for scripts and
//! tests (`--json`, `--stop-json`): one JSON object on standard error, so
//! that nothing has to wait for enetstat's English.

use std::fmt::Write as _;

/// `{"ready":{"mode":…,"netns":…,"programs":[…]}}`; `netns`: the traced
/// namespace's inode, None for every namespace (`null`).
pub fn json(mode: &str, netns: Option<u32>, programs: &[&str]) -> String {
    let mut out = format!("{{\"ready\":{{\"mode\":\"{mode}\",\"netns\":");
    match netns {
        Some(inode) => {
            let _ = write!(out, "{inode}");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"programs\":[");
    for (i, name) in programs.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{name}\"");
    }
    out.push_str("]}}");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_json_object_with_mode_namespace_and_programs() {
        let text = super::json("events", Some(4026531840), &["a", "b_second"]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["ready"]["mode"], "events");
        assert_eq!(v["ready"]["netns"], 4026531840u64);
        assert_eq!(v["ready"]["programs"][1], "b_second");
        let all: serde_json::Value =
            serde_json::from_str(&super::json("metrics", None, &[])).unwrap();
        assert!(all["ready"]["netns"].is_null());
    }
}
