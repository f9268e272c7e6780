//! Printing results: readable text on a terminal, one JSON object per line otherwise.

use std::io::{self, IsTerminal, Write};

use clap::ValueEnum;
use serde_json::Value;

use crate::error::CliError;

/// How results are printed (`-o text|json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Readable text.
    Text,
    /// JSON lines: one object per line.
    Json,
}

impl Format {
    /// `chosen`, or text when stdout is a terminal and JSON lines when it is not.
    pub(crate) fn resolve(chosen: Option<Self>) -> Self {
        chosen.unwrap_or_else(|| if io::stdout().is_terminal() { Self::Text } else { Self::Json })
    }
}

/// Writes the records of a command to stdout, flushing after each one (a subscriber's output
/// is read as it comes).
#[derive(Debug)]
pub(crate) struct Printer {
    format: Format,
}

impl Printer {
    pub(crate) fn new(format: Format) -> Self {
        Self { format }
    }

    pub(crate) fn format(&self) -> Format {
        self.format
    }

    /// Prints one record: `record` as a JSON line, or `text` (which may span lines).
    pub(crate) fn emit(&self, record: &Value, text: impl FnOnce() -> String) -> Result<(), CliError> {
        let line = match self.format {
            Format::Json => record.to_string(),
            Format::Text => text(),
        };
        let mut stdout = io::stdout().lock();
        let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
        written.map_err(|error| match error.kind() {
            io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
            _ => CliError::Runtime(format!("cannot write to stdout: {error}")),
        })
    }
}

/// A JSON value in one line, as text output shows values.
pub(crate) fn compact(value: &Value) -> String {
    value.to_string()
}
