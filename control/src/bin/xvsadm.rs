//! `xvsadm [--control PATH] <ipvsadm arguments>`: ipvsadm's command line for xvs.
//!
//! Parses the arguments as ipvsadm does (`xvs_control::ipvsadm`), sends the command to xvsd's
//! control socket (`$XVS_CONTROL`, else /run/xvs/xvs.sock), prints ipvsadm's output and exits
//! with ipvsadm's status: 0 done, 2 bad usage or no daemon, 1 a listing failed, 255 the daemon
//! refused a change or the command line has no command / an unknown option. `-R` reads all of
//! stdin and sends it as one batch: all of it is applied or, if a line fails, none.
//! `xvsadm capture ...` is the director's tcpdump (xvs_control::capture::cli).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use xvs_control::client::{default_control_path, Client, ClientError};
use xvs_control::ipvsadm::{self, Invocation, EXIT_COMMAND_FAILED, EXIT_LIST_FAILED, EXIT_USAGE};
use xvs_control::protocol::{Command, Reply};

fn main() -> ExitCode {
    let mut args = match utf8_args(std::env::args_os().skip(1)) {
        Ok(args) => args,
        Err(message) => return fail(&message, EXIT_USAGE),
    };
    let control = match ipvsadm::take_control_option(&mut args) {
        Ok(path) => path.unwrap_or_else(default_control_path),
        Err(e) => return fail(&e.to_string(), e.exit_code()),
    };
    if args.first().is_some_and(|a| a == "capture") {
        return capture(&control, &args[1..]);
    }
    match ipvsadm::parse(&args) {
        Ok(invocation) => run(&control, invocation),
        Err(e) => fail(&e.to_string(), e.exit_code()),
    }
}

/// `xvsadm capture ...` (xvs_control::capture::cli).
fn capture(control: &Path, args: &[String]) -> ExitCode {
    use xvs_control::capture::cli::{self, CaptureError};
    match cli::run(control, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CaptureError::Usage(e)) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            ExitCode::from(code)
        }
        Err(CaptureError::Client(e)) => client_failure(
            &Command::Capture {
                interface: None,
                filter: None,
                count: None,
            },
            e,
            EXIT_USAGE,
        ),
        Err(CaptureError::Io(message)) => fail(&message, EXIT_LIST_FAILED),
    }
}

fn utf8_args(args: impl Iterator<Item = OsString>) -> Result<Vec<String>, String> {
    args.map(|a| {
        a.into_string()
            .map_err(|a| format!("argument {a:?} is not valid UTF-8"))
    })
    .collect()
}

fn run(control: &Path, invocation: Invocation) -> ExitCode {
    match invocation {
        Invocation::Help => print(&ipvsadm::usage()),
        Invocation::Version => {
            let code = print(&format!("{}\n", ipvsadm::version_line()));
            // The client's version is the answer; the daemon's is a bonus when it runs.
            match call(control, Command::Version) {
                Ok(Reply::Version(info)) => {
                    print(&format!("{}\n", ipvsadm::format_daemon_version(&info)))
                }
                Ok(other) => fail(&format!("unexpected answer to version: {other:?}"), 0),
                Err(e) => fail(&e.to_string(), 0),
            };
            code
        }
        Invocation::List(opts) => list(control, Command::List, |reply| match reply {
            Reply::List(reply) => {
                Some(ipvsadm::format_list(&reply, &opts).map_err(|e| e.to_string()))
            }
            _ => None,
        }),
        Invocation::Health(opts) => list(control, Command::List, |reply| match reply {
            Reply::List(reply) => {
                Some(ipvsadm::format_health(&reply, &opts).map_err(|e| e.to_string()))
            }
            _ => None,
        }),
        Invocation::Save => list(control, Command::List, |reply| match reply {
            Reply::List(reply) => Some(Ok(ipvsadm::format_save(&reply))),
            _ => None,
        }),
        Invocation::Timeouts => list(control, Command::Timeouts, |reply| match reply {
            Reply::Timeouts(timeouts) => Some(Ok(ipvsadm::format_timeouts(&timeouts))),
            _ => None,
        }),
        Invocation::Connections(opts) => list(control, Command::Connections, |reply| match reply {
            Reply::Connections(reply) => {
                // Said on stderr, so the listing stays ipvsadm's.
                for warning in ipvsadm::connections_warnings(&reply) {
                    eprintln!("xvsadm: {warning}");
                }
                Some(Ok(ipvsadm::format_connections(&reply, &opts)))
            }
            _ => None,
        }),
        Invocation::Laddrs(opts) => laddrs(control, &opts),
        Invocation::Restore => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                return fail(&format!("reading the rules from stdin: {e}"), EXIT_USAGE);
            }
            match ipvsadm::parse_restore(&text) {
                Ok(command) => apply(control, command),
                Err(e) => fail(&e.to_string(), e.exit_code()),
            }
        }
        Invocation::Apply(command) => apply(control, command),
    }
}

/// Sends a change; the daemon answers `{}` or why not.
fn apply(control: &Path, command: Command) -> ExitCode {
    match call(control, command.clone()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => client_failure(&command, e, EXIT_COMMAND_FAILED),
    }
}

/// Sends a listing command and prints what `format` makes of the reply (`None`: not the
/// reply this command gets).
fn list(
    control: &Path,
    command: Command,
    format: impl FnOnce(Reply) -> Option<Result<String, String>>,
) -> ExitCode {
    match call(control, command.clone()) {
        Ok(reply) => {
            let shown = format!("{reply:?}");
            match format(reply) {
                Some(Ok(text)) => print(&text),
                Some(Err(message)) => fail(&message, EXIT_LIST_FAILED),
                None => fail(
                    &format!("unexpected answer to {command:?}: {shown}"),
                    EXIT_LIST_FAILED,
                ),
            }
        }
        Err(e) => client_failure(&command, e, EXIT_LIST_FAILED),
    }
}

/// `--get-laddr`: the table, then the connections, whose entries count each local address's
/// connections.
fn laddrs(control: &Path, opts: &ipvsadm::ListOptions) -> ExitCode {
    let table = match call(control, Command::List) {
        Ok(Reply::List(table)) => table,
        Ok(other) => {
            return fail(
                &format!("unexpected answer to list: {other:?}"),
                EXIT_LIST_FAILED,
            )
        }
        Err(e) => return client_failure(&Command::List, e, EXIT_LIST_FAILED),
    };
    list(control, Command::Connections, |reply| match reply {
        Reply::Connections(conns) => {
            for warning in ipvsadm::connections_warnings(&conns) {
                eprintln!("xvsadm: {warning}");
            }
            Some(ipvsadm::format_laddrs(&table, &conns, opts).map_err(|e| e.to_string()))
        }
        _ => None,
    })
}

fn call(control: &Path, command: Command) -> Result<Reply, ClientError> {
    Client::connect(control)?.call(command)
}

/// Reports a failed call; `refused` is the status when the daemon said no.
fn client_failure(command: &Command, error: ClientError, refused: u8) -> ExitCode {
    match error {
        ClientError::Daemon { code, message } => fail(
            &ipvsadm::daemon_error_message(command, code, &message),
            refused,
        ),
        // ipvsadm's "Can't initialize ipvs" is fail(2, ...).
        e @ ClientError::Connect { .. } => fail(&e.to_string(), EXIT_USAGE),
        e => fail(&e.to_string(), EXIT_LIST_FAILED),
    }
}

/// Writes to stdout; a closed pipe (`xvsadm -Ln | head -1`) is not worth a panic.
fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("writing output: {e}"), EXIT_LIST_FAILED),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("xvsadm: {message}");
    ExitCode::from(code)
}
