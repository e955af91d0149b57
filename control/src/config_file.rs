//! `xvsd --config FILE`: a configuration in the format `xvsadm -S` writes (one ipvsadm
//! command line per line, blank lines and `#` comments ignored), loaded at start and again on
//! SIGHUP. The daemon applies it as one `replace`: validated completely, then the difference to
//! the running configuration lands atomically, and established connections are kept.
//!
//! A `--sloppy tcp,udp` line (`-S` writes one first when sloppy TCP or UDP is on) sets both
//! settings; a file without one leaves them at `xvsd --sloppy-tcp`/`--sloppy-udp`'s (both off
//! without those options), whatever an `xvsadm --sloppy` changed since.

use crate::protocol::Command;
use anyhow::Context;
use std::path::Path;

/// Reads and parses `path` into the commands that build its configuration.
pub fn load(path: &Path) -> anyhow::Result<Vec<Command>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration {}", path.display()))?;
    parse(&text).with_context(|| format!("in the configuration {}", path.display()))
}

/// The commands of a configuration text, as `xvsadm -R` reads it.
pub fn parse(text: &str) -> anyhow::Result<Vec<Command>> {
    Ok(match crate::ipvsadm::parse_restore(text)? {
        Command::Batch { commands } => commands,
        other => vec![other],
    })
}
