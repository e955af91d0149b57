//! xvs's health-check options on `-A`/`-E` (`--check KIND` and its details), their values
//! and how `-S` writes them back.
//!
//! Defaults are [`CheckSpec::new`]'s; `-S` writes only what differs from them, so a saved
//! service restores to the same check. Without `--check-timeout`, a `--check-interval` shorter
//! than the default timeout also shortens the timeout (a check must end before the next).

use super::options::Opt;
use super::UsageError;
use crate::protocol::{
    CheckKind, CheckSpec, DEFAULT_CHECK_INTERVAL_MS, DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_FALL,
    DEFAULT_RISE,
};
use std::fmt::Write as _;

// The daemon's limits (`health::validate`), checked here too so that a bad value is refused
// before anything is sent, with ipvsadm's kind of message.
use crate::health::{MAX_INTERVAL_MS as MAX_CHECK_MS, MAX_RISE_FALL as MAX_COUNT, MIN_TIMEOUT_MS};

/// What `--check` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CheckChoice {
    /// `--check none`: remove the service's check.
    None,
    Kind(CheckKind),
}

/// The check options of one command line, each parsed when it is read (as ipvsadm parses its
/// values) and combined by [`CheckOptions::finish`].
#[derive(Debug, Clone, Default)]
pub(super) struct CheckOptions {
    pub(super) choice: Option<CheckChoice>,
    pub(super) port: Option<u16>,
    pub(super) path: Option<String>,
    pub(super) status: Option<u16>,
    pub(super) interval_ms: Option<u32>,
    pub(super) timeout_ms: Option<u32>,
    pub(super) rise: Option<u32>,
    pub(super) fall: Option<u32>,
}

fn illegal(what: &str) -> UsageError {
    UsageError::Invalid(format!("illegal {what} specified"))
}

impl CheckOptions {
    /// `--check tcp|http|none`.
    pub(super) fn set_kind(&mut self, value: &str) -> Result<(), UsageError> {
        self.choice = Some(match value {
            "tcp" => CheckChoice::Kind(CheckKind::Tcp),
            "http" => CheckChoice::Kind(CheckKind::Http),
            "none" => CheckChoice::None,
            _ => {
                return Err(UsageError::Invalid(format!(
                    "illegal check type `{value}' specified (tcp, http or none)"
                )))
            }
        });
        Ok(())
    }

    /// Reads the value of one of [`Opt::CHECK_DETAILS`].
    pub(super) fn set(&mut self, opt: Opt, value: &str) -> Result<(), UsageError> {
        match opt {
            Opt::CheckPort => {
                self.port = Some(
                    number(value, 1, 65535)
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| illegal("check port"))?,
                )
            }
            Opt::CheckPath => {
                // A request line's target: absolute, printable, no blanks.
                let ok = value.starts_with('/')
                    && value.len() <= 1024
                    && value.bytes().all(|b| b.is_ascii_graphic());
                if !ok {
                    return Err(illegal("check path"));
                }
                self.path = Some(value.to_string());
            }
            Opt::CheckStatus => {
                self.status = Some(
                    number(value, 100, 599)
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or_else(|| illegal("check status"))?,
                )
            }
            Opt::CheckInterval => {
                self.interval_ms =
                    Some(parse_seconds(value).ok_or_else(|| illegal("check interval"))?)
            }
            Opt::CheckTimeout => {
                self.timeout_ms =
                    Some(parse_seconds(value).ok_or_else(|| illegal("check timeout"))?)
            }
            Opt::Rise => {
                self.rise = Some(number(value, 1, MAX_COUNT).ok_or_else(|| illegal("rise count"))?)
            }
            Opt::Fall => {
                self.fall = Some(number(value, 1, MAX_COUNT).ok_or_else(|| illegal("fall count"))?)
            }
            _ => {}
        }
        Ok(())
    }

    /// What the options ask for: `None` leaves the check alone (no `--check`), `Some(None)`
    /// removes it, `Some(Some(spec))` sets it. `given` holds the [`Opt::bit`]s of the options
    /// on the command line.
    pub(super) fn finish(&self, given: u64) -> Result<Option<Option<CheckSpec>>, UsageError> {
        let details = Opt::CHECK_DETAILS
            .into_iter()
            .filter(|opt| given & opt.bit() != 0);
        let kind = match self.choice {
            None => {
                return match details.clone().next() {
                    Some(opt) => Err(UsageError::Invalid(format!(
                        "You need to supply the 'check' option with the '{}' option",
                        opt.name()
                    ))),
                    None => Ok(None),
                }
            }
            Some(CheckChoice::None) => {
                return match details.clone().next() {
                    Some(opt) => Err(UsageError::Invalid(format!(
                        "Illegal '{}' option with '--check none'",
                        opt.name()
                    ))),
                    None => Ok(Some(None)),
                }
            }
            Some(CheckChoice::Kind(kind)) => kind,
        };
        if kind == CheckKind::Tcp {
            if let Some(opt) = details
                .clone()
                .find(|o| matches!(o, Opt::CheckPath | Opt::CheckStatus))
            {
                return Err(UsageError::Invalid(format!(
                    "Illegal '{}' option with the 'tcp' check",
                    opt.name()
                )));
            }
        }
        let mut spec = CheckSpec::new(kind);
        spec.port = self.port;
        spec.path = self.path.clone();
        spec.expect_status = self.status;
        if let Some(interval) = self.interval_ms {
            spec.interval_ms = interval;
            spec.timeout_ms = spec.timeout_ms.min(interval);
        }
        if let Some(timeout) = self.timeout_ms {
            if timeout > spec.interval_ms {
                return Err(UsageError::Invalid(format!(
                    "illegal check timeout specified ({} s is longer than the check interval, {} s)",
                    format_seconds(timeout),
                    format_seconds(spec.interval_ms)
                )));
            }
            spec.timeout_ms = timeout;
        }
        spec.rise = self.rise.unwrap_or(DEFAULT_RISE);
        spec.fall = self.fall.unwrap_or(DEFAULT_FALL);
        Ok(Some(Some(spec)))
    }
}

/// A whole decimal number within `min..=max` (no sign, no blanks: these are xvs's options).
pub(super) fn number(text: &str, min: u32, max: u32) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|n| (min..=max).contains(n))
}

/// Seconds with up to three decimals (`2`, `0.5`, `1.25`) as milliseconds, within the
/// daemon's limits (0.1 s to an hour).
pub(super) fn parse_seconds(text: &str) -> Option<u32> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 3 {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = format!("{frac:0<3}").parse().ok()?;
    let ms = whole.checked_mul(1000)?.checked_add(frac)?;
    u32::try_from(ms)
        .ok()
        .filter(|ms| (MIN_TIMEOUT_MS..=MAX_CHECK_MS).contains(ms))
}

/// Milliseconds as [`parse_seconds`] reads them: `2000` is `2`, `500` is `0.5`.
pub(super) fn format_seconds(ms: u32) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

/// The options that rebuild `spec` on `-A` (xvs's extension of `-S`): `--check KIND`, then
/// each value that differs from the default, each with a leading blank.
pub(super) fn save_args(spec: &CheckSpec) -> String {
    let mut out = String::new();
    // `write!` into a String cannot fail.
    let _ = write!(out, " --check {}", kind_name(spec.kind));
    if let Some(port) = spec.port {
        let _ = write!(out, " --check-port {port}");
    }
    if let Some(path) = &spec.path {
        let _ = write!(out, " --check-path {path}");
    }
    if let Some(status) = spec.expect_status {
        let _ = write!(out, " --check-status {status}");
    }
    if spec.interval_ms != DEFAULT_CHECK_INTERVAL_MS {
        let _ = write!(
            out,
            " --check-interval {}",
            format_seconds(spec.interval_ms)
        );
    }
    // The timeout an interval alone implies (see the module doc) needs no option.
    let implied_timeout = DEFAULT_CHECK_TIMEOUT_MS.min(spec.interval_ms);
    if spec.timeout_ms != implied_timeout {
        let _ = write!(out, " --check-timeout {}", format_seconds(spec.timeout_ms));
    }
    if spec.rise != DEFAULT_RISE {
        let _ = write!(out, " --rise {}", spec.rise);
    }
    if spec.fall != DEFAULT_FALL {
        let _ = write!(out, " --fall {}", spec.fall);
    }
    out
}

/// `--check`'s name for a kind.
pub(super) fn kind_name(kind: CheckKind) -> &'static str {
    match kind {
        CheckKind::Tcp => "tcp",
        CheckKind::Http => "http",
    }
}
