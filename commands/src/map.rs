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
    /// Show entries added, removed and changed between reads, every interval,
    /// until Ctrl-C (or --count intervals). A changed entry lists the decoded
    /// fields that differ, old -> new. A name or pin that comes to point at
    /// another map is said so, and the new map compared with the old.
    Watch {
        /// A map name, a pin path or id:N.
        map: String,
        /// Milliseconds between reads.
        #[arg(long, default_value_t = 1000, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..))]
        interval: u64,
        /// One line per interval with the numbers added, removed and changed.
        #[arg(long)]
        count_only: bool,
        /// Stop after this many intervals.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
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
                let k = m.encode_input(&key, Side::Key, EncodeOptions { partial, ..Default::default() })?;
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
                let k = m.encode_input(&key, Side::Key, EncodeOptions { partial, ..Default::default() })?;
                let v = m.encode_input(&value, Side::Value, EncodeOptions { partial, ..Default::default() })?;
                let flags = match flag {
                    UpdateFlag::Any => 0,
                    UpdateFlag::Noexist => 1,
                    UpdateFlag::Exist => 2,
                };
                m.update(&k, &v, flags).with_context(|| format!("map update {map}"))?;
                p.print(&serde_json::json!({"updated": true}), || "Updated.".into())
            }
            MapCmd::Watch { map, interval, count_only, count } => {
                if matches!(p, Printer::Json) {
                    crate::usage!(
                        "map watch prints a stream: use -o jsonl (one JSON object per change) instead of -o json"
                    );
                }
                let spec = MapSpec::parse(&map)?;
                let mut w = dpdbg::maps::watch::Watch::new(spec, bpffs).with_context(|| format!("map watch {map}"))?;
                // On stderr, so stdout stays the changes alone: what is compared against.
                eprintln!(
                    "Watching map {} (id {}): changes every {interval} ms against a first read; Ctrl-C stops.",
                    w.map().info.name,
                    w.map().info.id
                );
                watch(&mut w, p, std::time::Duration::from_millis(interval), count_only, count)
                    .with_context(|| format!("map watch {map}"))
            }
            MapCmd::Delete { map, key, partial } => {
                let m = open(&map, bpffs, Access::Write)?;
                let k = m.encode_input(&key, Side::Key, EncodeOptions { partial, ..Default::default() })?;
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

/// The decoded key and value (or per-CPU values) of an entry, as `dump` shows them.
fn decoded(m: &AnyMap, key: &[u8], value: &[u8]) -> (serde_json::Value, serde_json::Value) {
    let (kp, vp) = m.plans();
    let percpu = m.is_percpu().then(|| (m.cpus(), m.value_buf_size() / m.cpus()));
    let mut out = Vec::new();
    any::write_entry(&mut out, &kp, &vp, key, value, percpu);
    let mut v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    let val = if percpu.is_some() { v["values"].take() } else { v["value"].take() };
    (v["key"].take(), val)
}

/// The leaves that differ between two decoded values: (path, old, new).
fn field_diff(
    path: String,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<(String, serde_json::Value, serde_json::Value)>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    Some(vb) => field_diff(format!("{path}.{k}"), va, vb, out),
                    None => out.push((format!("{path}.{k}"), va.clone(), Value::Null)),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                field_diff(format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push((if path.is_empty() { ".".into() } else { path }, a.clone(), b.clone())),
        _ => {}
    }
}

/// A change copied out of the watch's buffers: its kind (+, -, ~), key, old and new value.
type OwnedChange = (u8, Vec<u8>, Vec<u8>, Vec<u8>);

fn watch(
    w: &mut dpdbg::maps::watch::Watch,
    p: &Printer,
    interval: std::time::Duration,
    count_only: bool,
    count: Option<u64>,
) -> anyhow::Result<()> {
    use dpdbg::maps::watch::Change;
    use serde_json::json;
    crate::stop::install();
    let jsonl = matches!(p, Printer::Jsonl);
    let stdout = std::io::stdout();
    let mut intervals = 0u64;
    let mut absent = false;
    while count.is_none_or(|c| intervals < c) && !crate::stop::requested() {
        // Sleep in short steps so Ctrl-C ends the watch promptly.
        let until = std::time::Instant::now() + interval;
        while std::time::Instant::now() < until && !crate::stop::requested() {
            std::thread::sleep((until - std::time::Instant::now()).min(std::time::Duration::from_millis(50)));
        }
        if crate::stop::requested() {
            break;
        }
        intervals += 1;
        let mut lines: Vec<String> = Vec::new();
        let mut changes: Vec<OwnedChange> = Vec::new();
        let tick = w.tick(|c| {
            if count_only {
                return;
            }
            // Copied out: decoding needs the map, which the watch holds.
            match c {
                Change::Added { key, value } => changes.push((b'+', key.to_vec(), vec![], value.to_vec())),
                Change::Removed { key, value } => changes.push((b'-', key.to_vec(), value.to_vec(), vec![])),
                Change::Changed { key, old, new } => changes.push((b'~', key.to_vec(), old.to_vec(), new.to_vec())),
            }
        })?;
        match (&tick.absent, absent) {
            (Some(why), false) => eprintln!("map watch: {why}; reading again every interval until a map is back"),
            (None, true) => eprintln!("map watch: the map is back"),
            _ => {}
        }
        absent = tick.absent.is_some();
        if absent {
            continue;
        }
        if let Some((old, new)) = tick.replaced {
            lines.push(if jsonl {
                json!({"change": "replaced", "old_id": old, "new_id": new}).to_string()
            } else {
                format!("map replaced: id {old} -> id {new} (compared with the old map's last read)")
            });
        }
        let m = w.map();
        for (kind, key, old, new) in &changes {
            let (k, o) = decoded(m, key, if *kind == b'+' { new } else { old });
            match kind {
                b'+' => lines.push(if jsonl {
                    json!({"change": "added", "key": k, "value": o}).to_string()
                } else {
                    format!("+ {k} {o}")
                }),
                b'-' => lines.push(if jsonl {
                    json!({"change": "removed", "key": k, "value": o}).to_string()
                } else {
                    format!("- {k} {o}")
                }),
                _ => {
                    let (_, n) = decoded(m, key, new);
                    let mut fields = Vec::new();
                    field_diff(String::new(), &o, &n, &mut fields);
                    lines.push(if jsonl {
                        let f: Vec<_> =
                            fields.iter().map(|(f, a, b)| json!({"field": f, "old": a, "new": b})).collect();
                        json!({"change": "changed", "key": k, "old": o, "new": n, "fields": f}).to_string()
                    } else {
                        let f: Vec<String> = fields.iter().map(|(f, a, b)| format!("{f}: {a} -> {b}")).collect();
                        format!("~ {k} {}", f.join(", "))
                    });
                }
            }
        }
        if count_only {
            lines.push(if jsonl {
                json!({"added": tick.added, "removed": tick.removed, "changed": tick.changed, "entries": tick.entries})
                    .to_string()
            } else {
                format!("+{} -{} ~{} ({} entries)", tick.added, tick.removed, tick.changed, tick.entries)
            });
        }
        let mut out = stdout.lock();
        for l in lines {
            writeln!(out, "{l}")?;
        }
        out.flush()?;
    }
    Ok(())
}
