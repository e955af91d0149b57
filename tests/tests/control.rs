//! Operator-facing behaviour of the control socket through the real binaries: bad input gets a
//! clear error and changes nothing; the socket is private to root.

use std::os::unix::fs::PermissionsExt;
use xvs_tests::{root_or_skip, Cluster};

#[test]
fn bad_input_is_refused_and_leaves_the_configuration_alone() -> anyhow::Result<()> {
    if !root_or_skip("bad_input_is_refused_and_leaves_the_configuration_alone") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2ectl", 1, &[])?;
    let mode = std::fs::metadata(cluster.director.control_path())?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "control socket mode {mode:o}");

    cluster.configure("-t", 80)?;
    let before = cluster.xvsadm(&["-Ln"])?;
    let cases: &[(&[&str], &str)] = &[
        (&["-A", "-t", "198.18.0.129:80", "-s", "rr"], "exists"),
        (&["-A", "-t", "198.18.0.129:0", "-s", "rr"], "port"),
        (&["-A", "-t", "198.18.0.129:81", "-s", "nosuch"], "nosuch"),
        (
            &["-a", "-t", "198.18.0.129:80", "-r", "198.19.0.148", "-m"],
            "exists",
        ),
        (
            &[
                "-a",
                "-t",
                "198.18.0.129:80",
                "-r",
                "198.19.0.9",
                "-m",
                "-w",
                "70000",
            ],
            "weight",
        ),
        (
            &["-a", "-t", "198.18.0.129:80", "-r", "198.19.0.9", "-g"],
            "not supported",
        ),
        (
            &["-a", "-t", "198.18.0.129:99", "-r", "198.19.0.9", "-m"],
            "ervice",
        ),
        (
            &["-d", "-t", "198.18.0.129:80", "-r", "198.19.0.99"],
            "destination",
        ),
        (
            &["-A", "-t", "198.18.0.300:80"],
            "illegal virtual server address",
        ),
        (
            &["-A", "-t", "198.18.0.129:82", "--pe", "sip"],
            "not supported",
        ),
    ];
    for (args, needle) in cases {
        let (code, _, stderr) = cluster.xvsadm_raw(args)?;
        assert_ne!(code, 0, "xvsadm {args:?} succeeded");
        assert!(
            stderr.to_lowercase().contains(&needle.to_lowercase()),
            "xvsadm {args:?}: {stderr:?} does not mention {needle:?}"
        );
    }
    assert_eq!(
        cluster.xvsadm(&["-Ln"])?,
        before,
        "a refused command changed the state"
    );
    // Still serving.
    cluster.curl("/")?;

    // Raw protocol: malformed JSON and unknown commands get specific codes.
    let raw = |line: &str| -> anyhow::Result<serde_json::Value> {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::os::unix::net::UnixStream::connect(cluster.director.control_path())?;
        s.write_all(line.as_bytes())?;
        s.write_all(b"\n")?;
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply)?;
        Ok(serde_json::from_str(&reply)?)
    };
    assert_eq!(raw("{not json")?["error"]["code"], "bad_request");
    assert_eq!(
        raw(r#"{"cmd":"explode","id":4}"#)?["error"]["code"],
        "unknown_command"
    );
    assert_eq!(raw(r#"{"cmd":"explode","id":4}"#)?["id"], 4);
    assert_eq!(
        raw(r#"{"cmd":"list","v":2}"#)?["error"]["code"],
        "unsupported_version"
    );
    let too_big = format!(r#"{{"cmd":"list","pad":"{}"}}"#, "x".repeat(70_000));
    assert_eq!(raw(&too_big)?["error"]["code"], "request_too_large");
    assert_eq!(raw(r#"{"cmd":"list"}"#)?["ok"], true);
    Ok(())
}
