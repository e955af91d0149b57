//! popt as ipvsadm uses it: argv split into options (with their arguments) and stray words.

use super::options::{Arg, Key, Spec, SPECS};
use super::UsageError;

/// One recognised option: its spec, how the user spelled it, its argument.
pub(super) struct Found {
    pub(super) spec: &'static Spec,
    pub(super) shown: String,
    pub(super) value: Option<String>,
}

pub(super) enum Token {
    Opt(Found),
    Arg(String),
}

/// Splits argv as popt does for ipvsadm: `-Ln` clusters, `-t ADDR` or `-tADDR`,
/// `--weight 3` or `--weight=3`, `--` ends the options.
pub(super) struct Tokens<'a> {
    args: &'a [String],
    pos: usize,
    /// The rest of a short-option cluster (`n` after `-L` in `-Ln`).
    cluster: Option<String>,
    only_args: bool,
}

impl<'a> Tokens<'a> {
    pub(super) fn new(args: &'a [String]) -> Self {
        Tokens {
            args,
            pos: 0,
            cluster: None,
            only_args: false,
        }
    }

    pub(super) fn next_token(&mut self) -> Option<Result<Token, UsageError>> {
        if let Some(rest) = self.cluster.take() {
            return Some(self.short(&rest));
        }
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        if self.only_args {
            return Some(Ok(Token::Arg(arg.clone())));
        }
        if arg == "--" {
            self.only_args = true;
            return self.next_token();
        }
        if let Some(long) = arg.strip_prefix("--") {
            return Some(self.long(long));
        }
        match arg.strip_prefix('-') {
            Some(cluster) if !cluster.is_empty() => Some(self.short(cluster)),
            _ => Some(Ok(Token::Arg(arg.clone()))),
        }
    }

    fn long(&mut self, text: &str) -> Result<Token, UsageError> {
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (text, None),
        };
        let shown = format!("--{name}");
        let spec = SPECS
            .iter()
            .find(|s| s.long == name)
            .ok_or_else(|| UsageError::TryHelp(format!("unknown option '{shown}'")))?;
        let value = match (spec.key, spec.arg, inline) {
            // Refused by name before anything else is checked.
            (Key::Unsupported(_), _, _) => None,
            (_, Arg::Required | Arg::Optional, Some(value)) => Some(value),
            (_, Arg::Required, None) => Some(self.value_for(&shown)?),
            (_, Arg::Optional, None) => self.optional_value(),
            (_, Arg::None, Some(_)) => {
                return Err(UsageError::TryHelp(format!(
                    "option '{shown}' does not take an argument"
                )))
            }
            (_, Arg::None, None) => None,
        };
        Ok(Token::Opt(Found { spec, shown, value }))
    }

    fn short(&mut self, cluster: &str) -> Result<Token, UsageError> {
        let mut chars = cluster.chars();
        let Some(c) = chars.next() else {
            return Err(UsageError::TryHelp("empty option".into()));
        };
        let rest = chars.as_str();
        let shown = format!("-{c}");
        let spec = SPECS
            .iter()
            .find(|s| s.short == Some(c))
            .ok_or_else(|| UsageError::TryHelp(format!("unknown option '{shown}'")))?;
        let value = if matches!(spec.key, Key::Unsupported(_)) {
            None
        } else if spec.arg != Arg::None {
            // The rest of the cluster is the argument (`-w3`, `-p600`), else the next word.
            if !rest.is_empty() {
                Some(rest.to_string())
            } else if spec.arg == Arg::Required {
                Some(self.value_for(&shown)?)
            } else {
                self.optional_value()
            }
        } else {
            if !rest.is_empty() {
                self.cluster = Some(rest.to_string());
            }
            None
        };
        Ok(Token::Opt(Found { spec, shown, value }))
    }

    /// popt's optional argument: the next word unless there is none or it starts with `-`
    /// (`-p -M 255.255.255.0`, `-p --`), in which case it stays for the next option.
    fn optional_value(&mut self) -> Option<String> {
        let next = self.args.get(self.pos).filter(|a| !a.starts_with('-'))?;
        self.pos += 1;
        Some(next.clone())
    }

    fn value_for(&mut self, shown: &str) -> Result<String, UsageError> {
        let value = self
            .args
            .get(self.pos)
            .ok_or_else(|| UsageError::TryHelp(format!("option '{shown}' requires an argument")))?;
        self.pos += 1;
        Ok(value.clone())
    }
}
