//! `-L --health`: xvs's listing of the health checks and of what they found (ipvsadm has no
//! health checks; keepalived does them for LVS). The format is described in the module doc of
//! [`super`].

use super::check::{format_seconds, kind_name};
use super::format::version_header;
use super::format::{find_service, real_name, service_name, sorted_reals, sorted_services};
use super::{ListError, ListOptions};
use crate::protocol::{CheckKind, CheckSpec, HealthState, ListReply, ServiceInfo};
use std::fmt::Write as _;

/// Shown for a missing value: a real server without health, a check without a last error.
const NONE: &str = "-";

/// `-L --health [-t|-u SERVICE] [--nosort]`: each service's check and each real server's
/// health; the version header only when listing every service, as `-L` does.
pub fn format_health(reply: &ListReply, opts: &ListOptions) -> Result<String, ListError> {
    let mut out = String::new();
    let services = match opts.service {
        Some(key) => vec![find_service(reply, key)?],
        None => {
            version_header(&mut out, reply);
            sorted_services(reply, opts)
        }
    };
    // `write!` into a String cannot fail.
    let _ = writeln!(out, "Prot LocalAddress:Port Check");
    let _ = writeln!(
        out,
        "  -> {:<28} {:<5} {:<6} {:<10} {:<10} {:<10} LastError",
        "RemoteAddress:Port", "State", "Streak", "Passed", "Failed", "Since"
    );
    for svc in services {
        service_health(&mut out, svc, opts);
    }
    Ok(out)
}

fn service_health(out: &mut String, svc: &ServiceInfo, opts: &ListOptions) {
    let _ = writeln!(
        out,
        "{} {}",
        service_name(&svc.service),
        describe_check(svc.check.as_ref())
    );
    for r in sorted_reals(svc, opts) {
        let dname = real_name(&r.real);
        let Some(h) = &r.health else {
            let _ = writeln!(out, "  -> {dname:<28} {NONE}");
            continue;
        };
        let state = match h.state {
            HealthState::Up => "UP",
            HealthState::Down => "DOWN",
        };
        // Free text from the daemon, kept on its line.
        let error = h.last_error.as_deref().map_or_else(
            || NONE.to_string(),
            |e| {
                e.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect()
            },
        );
        let _ = writeln!(
            out,
            "  -> {dname:<28} {state:<5} {:<6} {:<10} {:<10} {:<10} {error}",
            h.streak, h.checks_passed, h.checks_failed, h.since_secs
        );
    }
}

/// A service's check in words: `none`, or the kind, then `port N` if the check does not use
/// the real server's port, `path` and `status` for http, then the timing.
fn describe_check(check: Option<&CheckSpec>) -> String {
    let Some(spec) = check else {
        return "none".to_string();
    };
    let mut out = kind_name(spec.kind).to_string();
    if let Some(port) = spec.port {
        let _ = write!(out, " port {port}");
    }
    if spec.kind == CheckKind::Http {
        let _ = write!(
            out,
            " path {} status {}",
            spec.path.as_deref().unwrap_or("/"),
            // No expected status: any 2xx is healthy.
            spec.expect_status
                .map_or_else(|| "2xx".to_string(), |s| s.to_string())
        );
    }
    let _ = write!(
        out,
        " interval {} timeout {} rise {} fall {}",
        format_seconds(spec.interval_ms),
        format_seconds(spec.timeout_ms),
        spec.rise,
        spec.fall
    );
    out
}
