//! xvs benchmarks as a library: the director fixture the hot-path benchmarks share
//! ([`fixture`]), and the `xvs-bench process` command ([`process_bench`]).
//!
//! The `xvs-bench` binary (`src/main.rs`) is the operators' entry point; the criterion benches
//! in `benches/` and `callgrind.sh` reuse the same fixture so that every figure measures the
//! same frames through the same director.

pub mod fixture;
pub mod process_bench;
