//! What goes wrong: command lines xvsadm refuses, listings it cannot print, and the words
//! ipvsadm uses for the kernel's refusals.

use super::{EXIT_TRY_HELP, EXIT_USAGE};
use crate::protocol::{Command, ErrorCode, ServiceKey};

/// A command line xvsadm cannot run. `Display` gives the message (without the `xvsadm: `
/// prefix); [`UsageError::exit_code`] the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// ipvsadm's `fail(2, ...)` messages: bad values, illegal or missing options.
    #[error("{0}")]
    Invalid(String),
    /// An ipvsadm option or mode xvs does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// No command, an unknown option or a missing option argument: ipvsadm points at `-h`.
    #[error("{0}\nTry `xvsadm -h' or 'xvsadm --help' for more information.")]
    TryHelp(String),
}

impl UsageError {
    /// ipvsadm's exit status for this kind of error.
    pub fn exit_code(&self) -> u8 {
        match self {
            UsageError::Invalid(_) | UsageError::Unsupported(_) => EXIT_USAGE,
            UsageError::TryHelp(_) => EXIT_TRY_HELP,
        }
    }
}

/// A listing that cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// `-L -t|-u` names a service the daemon does not have (libipvs: "No such service").
    #[error("No such service")]
    NoSuchService(ServiceKey),
}

/// The message ipvsadm prints when the kernel refuses `command` (libipvs `ipvs_strerror`);
/// the daemon's own message where ipvsadm has no equivalent.
pub fn daemon_error_message(command: &Command, code: ErrorCode, message: &str) -> String {
    let on_real = matches!(
        command,
        Command::AddReal { .. } | Command::EditReal { .. } | Command::DelReal { .. }
    );
    // IPVS answers ERANGE when the lower threshold exceeds the upper one (ip_vs_add_dest,
    // ip_vs_edit_dest); libipvs has no message of its own for it, so ipvsadm prints
    // strerror(ERANGE).
    let thresholds_reversed = match command {
        Command::AddReal {
            upper_threshold,
            lower_threshold,
            ..
        }
        | Command::EditReal {
            upper_threshold,
            lower_threshold,
            ..
        } => lower_threshold.unwrap_or(0) > upper_threshold.unwrap_or(0),
        _ => false,
    };
    let text = match code {
        // { ipvs_add_service, EEXIST, "Service already exists" }
        ErrorCode::ServiceExists => "Service already exists",
        // { ipvs_add_dest / ipvs_update_dest / ipvs_del_dest, ESRCH, "Service not defined" }
        ErrorCode::NoSuchService if on_real => "Service not defined",
        // { ipvs_update_service / ipvs_del_service / ipvs_get_service, ESRCH, "No such service" }
        ErrorCode::NoSuchService => "No such service",
        // { ipvs_add_dest, EEXIST, "Destination already exists" }
        ErrorCode::RealExists => "Destination already exists",
        // { ipvs_update_dest / ipvs_del_dest, ENOENT, "No such destination" }
        ErrorCode::NoSuchReal => "No such destination",
        // { ipvs_add_service / ipvs_update_service, ENOENT,
        //   "Scheduler or persistence engine not found" }
        // ipvsadm's words, then ours: which scheduler, and whether xvs lacks it or IPVS does.
        ErrorCode::UnknownScheduler => {
            return format!("Scheduler or persistence engine not found: {message}")
        }
        ErrorCode::InvalidArgument if thresholds_reversed => {
            return format!("Numerical result out of range: {message}")
        }
        _ => message,
    };
    text.to_string()
}
