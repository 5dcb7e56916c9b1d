//! `dpdbg map …`: any BPF map on the system, decoded through its BTF.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use dpdbg::btf::EncodeOptions;
use dpdbg::maps::any::{self, Access, AnyMap, MapSpec, Side};

use crate::output::{Printer, table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum UpdateFlag {
    /// Create or replace.
    Any,
    /// Only create: fail when the key exists.
    Noexist,
    /// Only replace: fail when the key is absent.
    Exist,
}

#[derive(Debug, Subcommand)]
pub enum MapCmd {
    /// List every BPF map on the system.
    List,
    /// Print every entry of a map (MAP: a name, a pin path or id:N).
    Dump {
        /// A map name, a pin path or id:N.
        map: String,
    },
    /// Print one entry. KEY is JSON (decoded through the map's BTF) or hex:… bytes.
    Get {
        /// A map name, a pin path or id:N.
        map: String,
        /// JSON checked against the map's BTF, or hex:….
        key: String,
        /// Fields a JSON key leaves out are zero (default: every field must be given).
        #[arg(long)]
        partial: bool,
    },
    /// Create or replace one entry. KEY and VALUE are JSON or hex:… bytes.
    Update {
        /// A map name, a pin path or id:N.
        map: String,
        /// JSON checked against the map's BTF, or hex:….
        key: String,
        /// JSON checked against the map's BTF, or hex:….
        value: String,
        /// any: create or replace; noexist: only create; exist: only replace.
        #[arg(long, value_enum, default_value_t = UpdateFlag::Any)]
        flag: UpdateFlag,
        /// Fields the JSON leaves out are zero (default: every field must be given).
        #[arg(long)]
        partial: bool,
    },
    /// Delete one entry.
    Delete {
        /// A map name, a pin path or id:N.
        map: String,
        /// JSON checked against the map's BTF, or hex:….
        key: String,
        /// Fields a JSON key leaves out are zero (default: every field must be given).
        #[arg(long)]
        partial: bool,
    },
}

fn open(map: &str, bpffs: &Path, access: Access) -> anyhow::Result<AnyMap> {
    let spec = MapSpec::parse(map)?;
    let (m, note) = AnyMap::open_for(&spec, bpffs, access).with_context(|| format!("map {map}"))?;
    if let Some(n) = note {
        eprintln!("{n}");
    }
    Ok(m)
}

impl MapCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        dpdbg::sys::require_privileges("reading BPF maps")?;
        match self {
            MapCmd::List => {
                let maps = any::list(bpffs)?;
                p.print(&maps, || {
                    let mut t = table(&["ID", "TYPE", "NAME", "KEY", "VALUE", "MAX ENTRIES", "FLAGS", "BTF", "PIN"]);
                    for m in &maps {
                        t.add_row(vec![
                            m.id.to_string(),
                            m.map_type.to_string(),
                            m.name.clone(),
                            m.key_size.to_string(),
                            m.value_size.to_string(),
                            m.max_entries.to_string(),
                            format!("{:#x}", m.flags),
                            if m.btf_id != 0 { m.btf_id.to_string() } else { "-".into() },
                            m.pin.as_ref().map_or(String::new(), |p| p.display().to_string()),
                        ]);
                    }
                    t.to_string()
                })
            }
            MapCmd::Dump { map } => dump(&open(&map, bpffs, Access::Read)?, p),
            MapCmd::Get { map, key, partial } => {
                let m = open(&map, bpffs, Access::Read)?;
                let k = m.parse_input_with(&key, Side::Key, EncodeOptions { partial, ..Default::default() })?;
                let v = m.get(&k)?.ok_or_else(|| anyhow::anyhow!("key {} not found in map {map}", any::quote(&key)))?;
                let mut out = Vec::new();
                let (kp, vp) = m.plans();
                let percpu = m.is_percpu().then(|| (m.cpus(), m.value_buf_size() / m.cpus()));
                any::write_entry(&mut out, &kp, &vp, &k, &v, percpu);
                let value: serde_json::Value = serde_json::from_slice(&out)?;
                p.print(&value, || human_entry(&value))
            }
            MapCmd::Update { map, key, value, flag, partial } => {
                let m = open(&map, bpffs, Access::Write)?;
                // Both are parsed and checked before anything is written.
                let k = m.parse_input_with(&key, Side::Key, EncodeOptions { partial, ..Default::default() })?;
                let v = m.parse_input_with(&value, Side::Value, EncodeOptions { partial, ..Default::default() })?;
                let flags = match flag {
                    UpdateFlag::Any => 0,
                    UpdateFlag::Noexist => 1,
                    UpdateFlag::Exist => 2,
                };
                m.update(&k, &v, flags).with_context(|| format!("map update {map}"))?;
                p.print(&serde_json::json!({"updated": true}), || "Updated.".into())
            }
            MapCmd::Delete { map, key, partial } => {
                let m = open(&map, bpffs, Access::Write)?;
                let k = m.parse_input_with(&key, Side::Key, EncodeOptions { partial, ..Default::default() })?;
                if !m.delete(&k)? {
                    anyhow::bail!("key {} not found in map {map}", any::quote(&key));
                }
                p.print(&serde_json::json!({"deleted": true}), || "Deleted.".into())
            }
        }
    }
}

fn human_entry(v: &serde_json::Value) -> String {
    let mut s = format!("key: {}\n", v["key"]);
    if let Some(vals) = v["values"].as_array() {
        for c in vals {
            s.push_str(&format!("value (CPU {:02}): {}\n", c["cpu"], c["value"]));
        }
    } else {
        s.push_str(&format!("value: {}\n", v["value"]));
    }
    s
}

/// Streams the map as it is read: JSON array, JSON lines, or key/value lines.
fn dump(m: &AnyMap, p: &Printer) -> anyhow::Result<()> {
    let (kp, vp) = m.plans();
    let percpu = m.is_percpu().then(|| (m.cpus(), m.value_buf_size() / m.cpus()));
    let ks = m.info.key_size as usize;
    let vs = m.value_buf_size();
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut buf = Vec::with_capacity(1 << 20);
    let mut first = true;
    // The array opens with its first entry, so an error before it leaves stdout empty.
    let n = m.for_each_batch(|keys, values, count| {
        buf.clear();
        for i in 0..count {
            let (k, v) = (&keys[i * ks..(i + 1) * ks], &values[i * vs..(i + 1) * vs]);
            match p {
                Printer::Json => {
                    buf.push(if first { b'[' } else { b',' });
                    any::write_entry(&mut buf, &kp, &vp, k, v, percpu);
                }
                Printer::Jsonl => {
                    any::write_entry(&mut buf, &kp, &vp, k, v, percpu);
                    buf.push(b'\n');
                }
                Printer::Table => {
                    let mut e = Vec::new();
                    any::write_entry(&mut e, &kp, &vp, k, v, percpu);
                    let val: serde_json::Value = serde_json::from_slice(&e).unwrap_or_default();
                    buf.extend_from_slice(human_entry(&val).as_bytes());
                }
            }
            first = false;
        }
        w.write_all(&buf).map_err(|e| dpdbg::Error::io("write", "stdout", e))
    })?;
    if matches!(p, Printer::Json) {
        w.write_all(if first { b"[]\n" } else { b"]\n" })?;
    }
    w.flush()?;
    if p.is_table() {
        if n == 0 {
            eprintln!("No entries found.");
        } else {
            eprintln!("Found {n} elements");
        }
    }
    Ok(())
}
