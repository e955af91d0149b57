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
    /// The message alone, without the pointer to `-h` that [`UsageError::TryHelp`] adds.
    pub fn message(&self) -> &str {
        match self {
            UsageError::Invalid(m) | UsageError::Unsupported(m) | UsageError::TryHelp(m) => m,
        }
    }

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

/// A line of `-R`'s input that is not a change of the table. Nothing is sent then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The line does not parse (ipvsadm's message for it, then the line).
    #[error("line {line}: {}: {text}", error.message())]
    Invalid {
        /// 1-based.
        line: usize,
        text: String,
        error: UsageError,
    },
    /// The line parses but changes nothing (`-L`, `-S`, `-h`, ...).
    #[error(
        "line {line}: not a change of the table (-A -E -D -C -a -e -d -Z --set --sloppy -P \
         -Q): {text}"
    )]
    NotAChange { line: usize, text: String },
}

impl RestoreError {
    /// The exit status: the line's own error's, as when ipvsadm runs a restored line.
    pub fn exit_code(&self) -> u8 {
        match self {
            RestoreError::Invalid { error, .. } => error.exit_code(),
            RestoreError::NotAChange { .. } => EXIT_USAGE,
        }
    }
}

/// The message ipvsadm prints when the kernel refuses `command` (libipvs `ipvs_strerror`);
/// the daemon's own message where ipvsadm has no equivalent.
///
/// A refused [`Command::Batch`] (the daemon says "command N of M (name): why") reads
/// "command N of M: " and then the message for the N-th command.
pub fn daemon_error_message(command: &Command, code: ErrorCode, message: &str) -> String {
    if let Command::Batch { commands } = command {
        return match batch_failure(message)
            .and_then(|(n, rest)| Some((n, commands.get(n - 1)?, rest)))
        {
            Some((n, inner, rest)) => format!(
                "command {n} of {}: {}",
                commands.len(),
                daemon_error_message(inner, code, rest)
            ),
            None => message.to_string(),
        };
    }
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

/// Splits the daemon's "command N of M (name): why" into N (1-based) and why.
fn batch_failure(message: &str) -> Option<(usize, &str)> {
    let rest = message.strip_prefix("command ")?;
    let (n, rest) = rest.split_once(" of ")?;
    let (_, why) = rest.split_once("): ")?;
    n.parse().ok().filter(|&n| n > 0).map(|n| (n, why))
}
