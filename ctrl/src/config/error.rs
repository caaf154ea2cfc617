//! A refused config, and the small checks every part of the config model words its errors
//! with. Imports nothing from the rest of the config.

use std::fmt;

/// A refused config: which file, which field, what is wrong, and where in the file when the
/// YAML parser knows. Every message names the offending value so it also reads well without
/// the path (the daemon shows `message` alone for `fvs addr add` and friends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or other origin) of the config; empty when not known.
    pub source: String,
    /// Field path like `routes[1].via`; empty for errors about the whole document.
    pub path: String,
    pub message: String,
    /// 1-based (line, column) when the YAML parser gave one.
    pub location: Option<(usize, usize)>,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError { source: String::new(), path: path.into(), message: message.into(), location: None }
    }

    pub fn with_source(mut self, source: &str) -> ConfigError {
        self.source = source.to_string();
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.source.is_empty() {
            write!(f, "{}: ", self.source)?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some((line, column)) = self.location {
            write!(f, " (line {line}, column {column})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn check(ok: bool, path: &str, message: impl FnOnce() -> String) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(path, message()))
    }
}

pub(crate) fn in_range<T: PartialOrd + fmt::Display + Copy>(v: T, lo: T, hi: T, path: &str) -> Result<(), ConfigError> {
    check(v >= lo && v <= hi, path, || format!("{v} is out of range, must be {lo}..={hi}"))
}

pub(crate) fn power_of_two_in(v: u64, lo: u64, hi: u64, path: &str) -> Result<(), ConfigError> {
    check(v.is_power_of_two() && v >= lo && v <= hi, path, || format!("{v} must be a power of two from {lo} to {hi}"))
}
