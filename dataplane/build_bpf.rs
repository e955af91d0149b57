// Shared by the build scripts that compile XDP programs (dataplane's, bench's): included with
// `include!`, since a build script cannot depend on its own crate.

/// Compiles the BPF C `source` (relative to the crate) with clang into `OUT_DIR/object`.
fn compile_bpf(source: &str, object: &str) {
    use std::env;
    use std::path::PathBuf;
    use std::process::Command;

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let mut cmd = Command::new(&clang);
    cmd.args([
        "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c", source, "-o",
    ])
    .arg(out.join(object));
    // bpf_helpers.h from the libbpf that libbpf-sys builds (exported through `links = "bpf"`
    // to the crates that depend on libbpf-sys directly).
    if let Some(include) = env::var_os("DEP_BPF_INCLUDE") {
        cmd.arg("-I").arg(include);
    }
    // <asm/types.h> lives under the multiarch directory on Debian.
    if let Ok(o) = Command::new("cc").arg("-print-multiarch").output() {
        let triple = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !triple.is_empty() {
            cmd.arg("-I").arg(format!("/usr/include/{triple}"));
        }
    }
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run {clang} to build the XDP program ({e}); run scripts/setup.sh")
    });
    assert!(status.success(), "clang failed to compile {source}");
}
