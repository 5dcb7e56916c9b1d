//! Output is resolved once into a Printer; commands hand it tables or
//! serializable values and never look at the format themselves.

use std::io::Write;

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, ContentArrangement, Table};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// One JSON document.
    Json,
    /// One JSON object per line (streams).
    Jsonl,
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
            Format::Table => Printer::Table,
            Format::Json => Printer::Json,
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
                serde_json::to_writer(&mut out, value)?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

/// A table in the style of cilium-dbg: no borders, upper-case headers.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(headers.iter().map(Cell::new));
    t
}
