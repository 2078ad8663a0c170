//! The `enetstat` binary; everything is in the library (src/lib.rs), which
//! the fuzz targets (netstat-userspace/fuzz) link too.

fn main() {
    netstat_userspace::main()
}
