//! Operator-facing behaviour of the control socket through the real binaries: bad input gets a
//! clear error and changes nothing; the socket is private to root.

use std::os::unix::fs::PermissionsExt;
use xvs_tests::{output_with_stdin, root_or_skip, Cluster};

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
            &[
                "-a",
                "-t",
                "198.18.0.129:80",
                "-r",
                "198.19.0.9",
                "-i",
                "--tun-type",
                "gue",
            ],
            "needs --tun-port",
        ),
        (
            &["-a", "-t", "198.18.0.129:80", "-r", "198.19.7.9", "-g"],
            "connected route",
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

/// One request line through `socat` as another user (`setpriv`); the response line.
fn request_as(uid: u32, gid: u32, socket: &std::path::Path, line: &str) -> anyhow::Result<String> {
    let mut command = std::process::Command::new("setpriv");
    command
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "socat",
            "-t",
            "5",
            "-",
        ])
        .arg(format!("UNIX-CONNECT:{}", socket.display()));
    let out = output_with_stdin(command, format!("{line}\n").as_bytes())?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn peers_are_checked_and_many_clients_are_served() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};
    if !root_or_skip("peers_are_checked_and_many_clients_are_served") {
        return Ok(());
    }
    // Debian's nogroup; any gid works, the test only needs one nobody else has.
    const GROUP: u32 = 65534;
    let cluster = Cluster::start("xvse2epeer", 1, &["--control-group", &GROUP.to_string()])?;
    cluster.configure("-t", 80)?;
    let socket = cluster.director.control_path().to_path_buf();
    let meta = std::fs::metadata(&socket)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), GROUP);

    // A member of the group is served; a stranger is refused even if the mode lets it in.
    let member = request_as(65534, GROUP, &socket, r#"{"cmd":"version","id":1}"#)?;
    assert!(member.contains(r#""ok":true"#), "{member}");
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
    let stranger = request_as(65534, 65533, &socket, r#"{"cmd":"clear"}"#)?;
    assert!(stranger.contains("permission_denied"), "{stranger}");
    assert!(
        cluster.xvsadm(&["-Ln"])?.contains("198.19.0.148"),
        "clear ran"
    );

    // Clients that connect and stall (half a request, or nothing) do not hold anyone up.
    let mut stalled = Vec::new();
    for i in 0..10 {
        let mut s = UnixStream::connect(&socket)?;
        if i % 2 == 0 {
            s.write_all(br#"{"cmd":"li"#)?;
        }
        stalled.push(s);
    }
    let started = Instant::now();
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(listing.contains("198.19.0.137"));
    // Several clients at once, each with many requests on one connection.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let socket = socket.clone();
            std::thread::spawn(move || -> anyhow::Result<usize> {
                let mut s = UnixStream::connect(&socket)?;
                let mut r = BufReader::new(s.try_clone()?);
                let mut ok = 0;
                for i in 0..25 {
                    writeln!(s, r#"{{"cmd":"list","id":{}}}"#, t * 100 + i)?;
                    let mut line = String::new();
                    r.read_line(&mut line)?;
                    let v: serde_json::Value = serde_json::from_str(&line)?;
                    if v["ok"] == true && v["id"] == t * 100 + i {
                        ok += 1;
                    }
                }
                Ok(ok)
            })
        })
        .collect();
    for t in threads {
        let served = t.join().map_err(|_| anyhow::anyhow!("client panicked"))??;
        assert_eq!(served, 25);
    }
    drop(stalled);
    Ok(())
}

#[test]
fn json_bad_input_table_and_atomic_batches() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    if !root_or_skip("json_bad_input_table_and_atomic_batches") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2ejson", 1, &[])?;
    cluster.configure("-t", 80)?;
    let before = cluster.xvsadm(&["-Ln"])?;
    let mut s = std::os::unix::net::UnixStream::connect(cluster.director.control_path())?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut call = |line: &str| -> anyhow::Result<serde_json::Value> {
        writeln!(s, "{line}")?;
        let mut reply = String::new();
        r.read_line(&mut reply)?;
        Ok(serde_json::from_str(&reply)?)
    };
    let svc = r#"{"proto":"tcp","addr":"198.18.0.129","port":80}"#;
    let cases: Vec<(String, &str)> = vec![
        ("{\"cmd\":".into(), "bad_request"),
        ("[1,2]".into(), "bad_request"),
        (r#"{"cmd":"reboot"}"#.into(), "unknown_command"),
        (
            r#"{"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0","port":80}}"#.into(),
            "invalid_argument",
        ),
        (
            r#"{"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0.129","port":0}}"#
                .into(),
            "invalid_argument",
        ),
        (
            r#"{"cmd":"add_service","service":{"proto":"sctp","addr":"198.18.0.129","port":81}}"#
                .into(),
            "invalid_argument",
        ),
        (format!(r#"{{"cmd":"add_service","service":{svc}}}"#), "service_exists"),
        (
            r#"{"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0.129","port":81},"scheduler":"fastest"}"#
                .into(),
            "unknown_scheduler",
        ),
        (
            format!(
                r#"{{"cmd":"add_real","service":{svc},"real":{{"addr":"198.19.0.9","port":80}},"weight":70000}}"#
            ),
            "invalid_argument",
        ),
        (
            r#"{"cmd":"del_service","service":{"proto":"udp","addr":"198.18.0.129","port":80}}"#
                .into(),
            "no_such_service",
        ),
        (
            r#"{"cmd":"set_timeouts","tcp":-1,"tcpfin":0,"udp":0}"#.to_string(),
            "invalid_argument",
        ),
        (
            format!(
                r#"{{"cmd":"set_check","service":{svc},"check":{{"kind":"ping"}}}}"#
            ),
            "invalid_argument",
        ),
        // A batch is all or nothing: the new service of command 1 must not appear.
        (
            format!(
                r#"{{"cmd":"batch","commands":[{{"cmd":"add_service","service":{{"proto":"tcp","addr":"198.18.0.129","port":443}}}},{{"cmd":"add_service","service":{svc}}}]}}"#
            ),
            "service_exists",
        ),
        (
            r#"{"cmd":"batch","commands":[{"cmd":"list"}]}"#.into(),
            "invalid_argument",
        ),
    ];
    for (line, code) in &cases {
        let reply = call(line)?;
        assert_eq!(reply["ok"], false, "{line}: {reply}");
        assert_eq!(reply["error"]["code"], *code, "{line}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{line}: {reply}"
        );
    }
    let batch = call(&format!(
        r#"{{"cmd":"batch","commands":[{{"cmd":"add_service","service":{{"proto":"tcp","addr":"198.18.0.129","port":443}}}},{{"cmd":"add_service","service":{svc}}}]}}"#
    ))?;
    assert!(
        batch["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("command 2 of 2 (add_service)")),
        "{batch}"
    );
    assert_eq!(
        cluster.xvsadm(&["-Ln"])?,
        before,
        "bad input changed the state"
    );
    cluster.curl("/")?;
    Ok(())
}
