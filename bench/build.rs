//! Compiles the benchmark's XDP generator and sink (bpf/xvs_bench_xdp.c) with clang into
//! OUT_DIR; `agent xdpgen` and `agent xdpsink` embed the object.

include!("../dataplane/build_bpf.rs");

fn main() {
    println!("cargo:rerun-if-changed=../dataplane/build_bpf.rs");
    compile_bpf("bpf/xvs_bench_xdp.c", "xvs_bench_xdp.o");
}
