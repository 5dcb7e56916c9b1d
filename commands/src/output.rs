//! Output is resolved once into a Printer; commands hand it tables or
//! serializable values and never look at the format themselves.

use std::io::Write;

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, ContentArrangement, Table};
/// User input for an error message, cut to a readable length: the core's,
/// so the CLI and the core quote alike.
pub use dpdbg::maps::any::quote;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line (streams).
    Jsonl,
    /// `observe`: one line per flow (Hubble's compact); a table elsewhere.
    Compact,
    /// `observe`: KEY: value blocks (Hubble's dict); a table elsewhere.
    Dict,
    /// `observe`: Hubble's jsonpb, the same as json there; json elsewhere.
    Jsonpb,
    /// `verify`: JUnit XML for CI systems (other commands refuse it).
    Junit,
}

#[derive(Clone, Copy, Debug)]
pub enum Printer {
    Table,
    Json,
    Jsonl,
}

impl Printer {
    pub fn new(f: Format) -> Printer {
        match f {
            // Only verify takes junit; run() refuses it for the others first.
            Format::Table | Format::Compact | Format::Dict | Format::Junit => Printer::Table,
            Format::Json | Format::Jsonpb => Printer::Json,
            Format::Jsonl => Printer::Jsonl,
        }
    }

    pub fn is_table(&self) -> bool {
        matches!(self, Printer::Table)
    }

    /// Prints `value` as JSON when asked for JSON, else calls `human`.
    pub fn print<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match self {
            Printer::Table => {
                let s = human();
                out.write_all(s.as_bytes())?;
                if !s.ends_with('\n') && !s.is_empty() {
                    out.write_all(b"\n")?;
                }
            }
            Printer::Json => {
                serde_json::to_writer_pretty(&mut out, value)?;
                out.write_all(b"\n")?;
            }
            Printer::Jsonl => {
                // A list is a stream of records: one object per line.
                match serde_json::to_value(value)? {
                    serde_json::Value::Array(items) => {
                        for item in items {
                            serde_json::to_writer(&mut out, &item)?;
                            out.write_all(b"\n")?;
                        }
                    }
                    other => {
                        serde_json::to_writer(&mut out, &other)?;
                        out.write_all(b"\n")?;
                    }
                }
            }
        }
        Ok(())
    }

    pub fn is_json(&self) -> bool {
        !self.is_table()
    }
}

/// A mistake in how the command was called, found after parsing (a port
/// without a protocol, a bad MAC): exit code 2, like the errors clap finds.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns early with a usage error (exit code 2).
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::output::UsageError(format!($($arg)*))))
    };
}

/// A command that ran elsewhere (`--server`) and exited with this code
/// after printing its own error: main exits with the code, printing nothing.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// The error's message with its causes, each said once: a cause whose text
/// its parent already includes is not repeated, and errno values the C
/// library has no name for are explained.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts
        .join(": ")
        .replace("Unknown error 524", "operation not supported for this kind of map or program (ENOTSUPP, 524)")
        .replace("Unknown error 523", "the kernel refused the request (ENOTSUPP_OR_BADCOOKIE, 523)")
}

/// The exit code for an error: 2 for usage mistakes, 1 for everything else.
/// Usage mistakes the libraries find keep their own types (a --server that
/// does not parse, a map key that does not fit the map); the command edge
/// decides their code here.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    let usage = |c: &(dyn std::error::Error + 'static)| {
        c.downcast_ref::<UsageError>().is_some()
            || c.downcast_ref::<dpdbg_api::client::AddressError>().is_some()
            || c.downcast_ref::<dpdbg::maps::any::InputError>().is_some()
    };
    if e.chain().any(usage) { 2 } else { 1 }
}

/// Whether the command line asks for JSON (`-o json|jsonl|jsonpb` in any of
/// clap's spellings), read from the words themselves: when clap refused the
/// command line there is no parsed `--output` to ask, yet a script that
/// asked for JSON must get its error as JSON. The last `-o` wins, as in
/// clap; words after `--` are values, not flags.
pub fn json_asked<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> bool {
    let mut json = false;
    let mut words = args.iter().map(|a| a.as_ref().to_string_lossy());
    while let Some(w) = words.next() {
        let value = match w.as_ref() {
            "--" => break,
            "-o" | "--output" => words.next().map(|v| v.into_owned()),
            w => w
                .strip_prefix("--output=")
                .or_else(|| w.strip_prefix("-o=").or_else(|| w.strip_prefix("-o")))
                .map(str::to_string),
        };
        if let Some(v) = value {
            json = matches!(v.as_str(), "json" | "jsonl" | "jsonpb");
        }
    }
    json
}

/// A clap error as a message without clap's own "error: " prefix (the
/// caller says it is an error its own way). A command that needs a
/// subcommand or argument and got none is told so before its help.
pub fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let text = text.trim_end();
    match e.kind() {
        clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            format!("a subcommand or argument is missing; the command's help:\n\n{text}")
        }
        _ => text.strip_prefix("error: ").unwrap_or(text).to_string(),
    }
}

/// A table in the style of cilium-dbg: no borders, upper-case headers.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(headers.iter().map(Cell::new));
    t
}

#[cfg(test)]
mod tests {
    use super::json_asked;

    #[test]
    fn json_is_read_from_every_spelling_of_output() {
        for args in [
            &["-o", "json", "bpf"][..],
            &["-ojson"],
            &["-o=jsonl"],
            &["--output", "jsonpb"],
            &["--output=json"],
            &["-o", "table", "x", "-o", "json"],
        ] {
            assert!(json_asked(args), "{args:?}");
        }
        for args in [
            &["bpf"][..],
            &["-o", "table"],
            &["-o", "compact"],
            &["-o", "json", "-o", "dict"],
            &["map", "get", "--", "-o", "json"],
            &["-o"],
            &["--outputs=json"],
        ] {
            assert!(!json_asked(args), "{args:?}");
        }
    }
}
