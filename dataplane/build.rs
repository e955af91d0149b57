//! Compiles the XDP steering program (bpf/xvs_xdp.c) with clang into OUT_DIR; the daemon
//! embeds the object and loads it with libbpf at start.

include!("build_bpf.rs");

fn main() {
    println!("cargo:rerun-if-changed=build_bpf.rs");
    compile_bpf("bpf/xvs_xdp.c", "xvs_xdp.o");
}
