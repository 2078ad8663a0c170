//! enetstat as a non-root user holding only the capabilities that the
//! README's table gives for this kernel: each tracing mode works, with
//! exact events; without any one of them the run fails in one line that
//! names it.

use std::process::Command;

use tests::{
    Netns, Tracer, as_nobody, as_uid, enetstat_bin, kernel_before, listen,
    sequences::{assert_graceful, connect_accept_close},
};

/// The least set of the tracing modes here (README, Capabilities): CAP_BPF
/// and CAP_PERFMON, and CAP_SYS_RESOURCE where the kernel charges BPF maps
/// to the locked-memory limit (before 5.11).
fn least() -> Vec<&'static str> {
    let mut caps = vec!["bpf", "perfmon"];
    if kernel_before(5, 11) {
        caps.push("sys_resource");
    }
    caps
}

/// As nobody with `caps`, under the locked-memory limit of a usual system
/// (systemd's default, 8 MiB), whatever the test's own.
fn as_user(caps: &[&str]) -> Vec<String> {
    let mut wrapper = vec![
        "prlimit".to_string(),
        "--memlock=8388608:8388608".to_string(),
    ];
    wrapper.extend(as_nobody(caps));
    wrapper
}

#[test]
fn with_the_least_capabilities_the_event_log_is_exact() {
    let ns = Netns::new("caps-events");
    let tracer = Tracer::start_wrapped(
        &ns,
        &as_user(&least()),
        &enetstat_bin(),
        &["-E", "-n", "--json"],
    );
    let owners = connect_accept_close(&ns, "127.0.0.1:8080", false);
    tracer.wait_quiet();
    assert_graceful(&ns, &tracer.stop(), owners);
}

#[test]
fn with_the_least_capabilities_every_tracing_mode_runs() {
    let ns = Netns::new("caps-modes");
    for args in [
        &["-S", "1"][..],
        &["--metrics", "127.0.0.1:9104"],
        &["-E", "--netns", "all"],
    ] {
        let tracer = Tracer::start_wrapped(&ns, &as_user(&least()), &enetstat_bin(), args);
        let out = tracer.stop();
        assert!(out.status.success(), "{args:?}: {:?}", out.stderr);
    }
}

#[test]
fn without_any_one_capability_the_run_fails_naming_it() {
    let ns = Netns::new("caps-missing");
    let least = least();
    for cap in &least {
        let fewer: Vec<&str> = least.iter().copied().filter(|c| c != cap).collect();
        let wrapper = as_user(&fewer);
        let out = ns
            .command(&wrapper[0])
            .args(&wrapper[1..])
            .arg(enetstat_bin())
            .args(["-E", "--duration", "1"])
            .output()
            .expect("run enetstat");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "without {cap}: {stderr}");
        let name = format!("CAP_{}", cap.to_uppercase());
        assert_eq!(stderr.lines().count(), 1, "without {cap}: {stderr}");
        assert!(stderr.contains(&name), "without {cap}: {stderr}");
    }
    // Entering a named namespace, or each namespace for -S, needs
    // CAP_SYS_ADMIN besides.
    let wrapper = as_user(&least);
    for args in [
        &["-E", "--netns", &ns.name, "--duration", "1"][..],
        &["-S", "1", "--netns", "all", "--duration", "1"],
    ] {
        let out = Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .arg(enetstat_bin())
            .args(args)
            .output()
            .expect("run enetstat");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("CAP_SYS_ADMIN"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_listing_names_others_processes_with_both_capabilities() {
    let ns = Netns::new("caps-listing");
    let mut listener = listen(&ns, "127.0.0.1:7300", 8);
    // A user no other process runs as: which notice netstat prints depends
    // on whether any other process's sockets could be read, and this
    // binary's other tests run enetstat as nobody (--metrics holds one).
    let listing = |caps: &[&str]| {
        let wrapper = as_uid(64999, caps);
        let out = ns
            .command(&wrapper[0])
            .args(&wrapper[1..])
            .args([enetstat_bin().to_str().unwrap(), "-tlnp"])
            .output()
            .expect("run enetstat");
        assert!(out.status.success());
        let row = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains("127.0.0.1:7300"))
            .map(|l| l.split_whitespace().last().unwrap_or_default().to_string());
        (row, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let owner = format!("{}/tcpload", listener.pid());
    assert_eq!(listing(&["dac_read_search", "sys_ptrace"]).0, Some(owner));
    // Without CAP_DAC_READ_SEARCH: netstat's notice. Without CAP_SYS_PTRACE
    // the row shows `-`, as netstat's does.
    let (row, notice) = listing(&["sys_ptrace"]);
    assert_eq!(row.as_deref(), Some("-"));
    assert!(notice.contains("you should be root"), "{notice}");
    assert_eq!(listing(&["dac_read_search"]).0.as_deref(), Some("-"));
    listener.close();
}
