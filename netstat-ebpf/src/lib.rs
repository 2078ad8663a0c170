#![no_std]
// The kernel programs live in the `netstat` binary (src/main.rs); this empty
// library lets netstat-userspace name the crate as a build dependency.
