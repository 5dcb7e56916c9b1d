use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

use clap::Subcommand;
use dpdbg::maps::ct::{self, CtFilter, CtView};

use super::{parse_proto, proto_name};
use crate::output::{Printer, table};

#[derive(Debug, Subcommand)]
pub enum CtCmd {
    /// List conntrack entries.
    List {
        /// IPv4 entries only.
        #[arg(long, conflicts_with = "ipv6")]
        ipv4: bool,
        /// IPv6 entries only.
        #[arg(long)]
        ipv6: bool,
        /// Entries with this address as source or destination.
        #[arg(long)]
        ip: Option<IpAddr>,
        /// Entries with this port as source or destination.
        #[arg(long)]
        port: Option<u16>,
        /// tcp, udp, icmp, icmpv6 or a number.
        #[arg(long, value_parser = parse_proto)]
        proto: Option<u8>,
    },
    /// Remove every entry.
    Flush,
    /// Remove expired entries and say how many.
    Gc,
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        v4 => format!("{v4}:{port}"),
    }
}

impl CtCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        match self {
            CtCmd::List { ipv4, ipv6, ip, port, proto } => {
                let filter = CtFilter {
                    family: if ipv4 {
                        Some(4)
                    } else if ipv6 {
                        Some(6)
                    } else {
                        None
                    },
                    ip,
                    port,
                    // "any" parses to 0: no filter.
                    proto: proto.filter(|p| *p != 0),
                };
                list(bpffs, &filter, p)
            }
            CtCmd::Flush => {
                let n = ct::flush(bpffs)?;
                p.print(&serde_json::json!({"deleted": n}), || format!("Flushed {n} entries"))
            }
            CtCmd::Gc => {
                let n = ct::gc(bpffs)?;
                p.print(&serde_json::json!({"deleted": n}), || format!("Deleted {n} expired entries"))
            }
        }
    }
}

/// Pod names by address (`lab/ep1`), read once for the whole list: two
/// lookups an entry, none when no endpoint has a name.
fn pods_by_address(bpffs: &Path) -> HashMap<IpAddr, String> {
    let names = dpdbg::maps::Maps::open(bpffs).and_then(|m| m.names()).unwrap_or_default();
    names.endpoints.iter().filter_map(|(ip, id)| names.pods.get(id).map(|p| (*ip, p.to_string()))).collect()
}

/// `"src_name":…,"dst_name":…` before an entry's closing brace, for the
/// sides that are named endpoints.
fn push_names(buf: &mut Vec<u8>, v: &CtView, pods: &HashMap<IpAddr, String>) {
    let (src, dst) = (pods.get(&v.src), pods.get(&v.dst));
    if (src, dst) == (None, None) || buf.last() != Some(&b'}') {
        return;
    }
    buf.pop();
    for (k, name) in [(",\"src_name\":", src), (",\"dst_name\":", dst)] {
        if let Some(n) = name {
            buf.extend_from_slice(k.as_bytes());
            // Pod names are RFC 1123 names: nothing to escape.
            buf.push(b'"');
            buf.extend_from_slice(n.as_bytes());
            buf.push(b'"');
        }
    }
    buf.push(b'}');
}

fn list(bpffs: &Path, filter: &CtFilter, p: &Printer) -> anyhow::Result<()> {
    let pods = pods_by_address(bpffs);
    let stdout = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, stdout.lock());
    let n = match p {
        Printer::Json | Printer::Jsonl => {
            // Streamed as read: memory stays flat however large the table.
            let json = matches!(p, Printer::Json);
            let mut buf = Vec::with_capacity(512);
            let mut first = true;
            // The array opens with its first entry, so an error before it leaves stdout empty.
            let n = ct::for_each(bpffs, filter, |v| {
                buf.clear();
                if json {
                    buf.push(if first { b'[' } else { b',' });
                }
                first = false;
                ct::write_json(&mut buf, &v);
                if !pods.is_empty() {
                    push_names(&mut buf, &v, &pods);
                }
                if !json {
                    buf.push(b'\n');
                }
                w.write_all(&buf).map_err(|e| dpdbg::Error::io("write", "stdout", e))
            })?;
            if json {
                w.write_all(if first { b"[]\n" } else { b"]\n" })?;
            }
            n
        }
        Printer::Table => {
            let mut rows: Vec<CtView> = Vec::new();
            ct::for_each(bpffs, filter, |v| {
                rows.push(v);
                Ok(())
            })?;
            if !rows.is_empty() {
                // The pods of either side, when any entry has one.
                let named = rows.iter().any(|v| pods.contains_key(&v.src) || pods.contains_key(&v.dst));
                let pod = |ip: &IpAddr| pods.get(ip).map_or("-", String::as_str);
                let mut headers = vec![
                    "PROTO",
                    "DIR",
                    "SOURCE",
                    "DESTINATION",
                    "STATE",
                    "PACKETS",
                    "BYTES",
                    "AGE",
                    "EXPIRES",
                    "IDENTITY",
                    "FLAGS",
                ];
                if named {
                    headers.insert(4, "PODS");
                }
                let mut t = table(&headers);
                for v in &rows {
                    let mut row = vec![
                        proto_name(v.proto),
                        if v.direction == "egress" { "OUT" } else { "IN" }.to_string(),
                        endpoint(v.src, v.sport),
                        endpoint(v.dst, v.dport),
                        v.state.to_string(),
                        format!("{}/{}", v.packets_fwd, v.packets_rev),
                        format!("{}/{}", v.bytes_fwd, v.bytes_rev),
                        format!("{}s", v.age_s),
                        if v.expires_in_s < 0 { "expired".into() } else { format!("{}s", v.expires_in_s) },
                        v.src_identity.to_string(),
                        v.flags.join(","),
                    ];
                    if named {
                        row.insert(4, format!("{} -> {}", pod(&v.src), pod(&v.dst)));
                    }
                    t.add_row(row);
                }
                writeln!(w, "{t}")?;
            }
            rows.len() as u64
        }
    };
    w.flush()?;
    if n == 0 && p.is_table() {
        eprintln!("No entries found.");
    }
    Ok(())
}
