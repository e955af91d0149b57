//! `-L --health` (xvs's listing), byte for byte.

use super::*;
use crate::protocol::{CheckKind, CheckSpec};

/// The persistent fixture with checks: http with every detail on TCP :80 (one real server
/// down), a default tcp check on :443, none on the UDP services (one real server unchecked).
fn checked() -> ListReply {
    let mut reply = persistent();
    reply.services[0].check = Some(CheckSpec {
        port: Some(8080),
        path: Some("/health".into()),
        expect_status: Some(204),
        interval_ms: 5000,
        timeout_ms: 500,
        rise: 3,
        fall: 4,
        ..CheckSpec::new(CheckKind::Http)
    });
    reply.services[0].reals[0].health = Some(health(HealthState::Down));
    reply.services[0].reals[1].health = Some(health(HealthState::Up));
    reply.services[1].check = Some(CheckSpec::new(CheckKind::Tcp));
    reply.services[2].reals = vec![real_info([198, 19, 0, 1], 53, 1, Counters::default())];
    reply
}

fn health_opts(line: &str) -> ListOptions {
    match parse(&args(line)) {
        Ok(Invocation::Health(opts)) => opts,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn golden_health_listing() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Check
  -> RemoteAddress:Port           State Streak Passed     Failed     Since      LastError
TCP  198.18.0.129:80 http port 8080 path /health status 204 interval 5 timeout 0.5 rise 3 fall 4
  -> 198.19.0.137:80              UP    3      1000       17         12         -
  -> 198.19.0.148:80              DOWN  3      1000       17         12         connection refused
TCP  198.18.0.129:443 tcp interval 2 timeout 1 rise 2 fall 2
UDP  198.18.0.129:53 none
  -> 198.19.0.1:53                -
UDP  198.18.0.129:123 none
";
    assert_eq!(
        format_health(&checked(), &health_opts("-Ln --health")).unwrap(),
        expected
    );
    // One service: no header; --nosort keeps the daemon's order.
    let one = "\
Prot LocalAddress:Port Check
  -> RemoteAddress:Port           State Streak Passed     Failed     Since      LastError
TCP  198.18.0.129:80 http port 8080 path /health status 204 interval 5 timeout 0.5 rise 3 fall 4
  -> 198.19.0.148:80              DOWN  3      1000       17         12         connection refused
  -> 198.19.0.137:80              UP    3      1000       17         12         -
";
    assert_eq!(
        format_health(
            &checked(),
            &health_opts("-L --health --nosort -t 198.18.0.129:80")
        )
        .unwrap(),
        one
    );
    assert_eq!(
        format_health(&checked(), &health_opts("-L --health -t 198.18.0.129:81"))
            .unwrap_err()
            .to_string(),
        "No such service"
    );
}

#[test]
fn health_defaults_and_odd_errors() {
    let mut reply = checked();
    // An http check with every default spells the defaults out.
    reply.services[0].check = Some(CheckSpec::new(CheckKind::Http));
    // A multi-line error stays on its line.
    reply.services[0].reals[0].health = Some(HealthInfo {
        last_error: Some("HTTP/1.0 503\r\nbusy".into()),
        ..health(HealthState::Down)
    });
    let out = format_health(&reply, &health_opts("-L --health -t 198.18.0.129:80")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[2],
        "TCP  198.18.0.129:80 http path / status 2xx interval 2 timeout 1 rise 2 fall 2"
    );
    assert_eq!(
        lines[4],
        "  -> 198.19.0.148:80              DOWN  3      1000       17         12         \
         HTTP/1.0 503  busy"
    );
    assert_eq!(lines.len(), 5);
}
