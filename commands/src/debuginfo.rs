//! `dpdbg debuginfo`: one file with what an incident needs looked at, as
//! `cilium-dbg debuginfo` and cilium-bugtool collect it: version, kernel and
//! features, the status verdict, settings, every dpdbg map decoded (tables
//! with a cap, said in the manifest), metrics, programs with statistics and
//! their translated instructions, attachments, pins, the lab's state, the
//! last flows from `dpdbg serve` when it runs, and the kernel log's lines
//! about BPF.
//!
//! Each part is what the matching dpdbg command prints with `-o json` (run
//! as a child of this binary, so a part is exactly what an operator would
//! get by hand), or a file or command of the system; a part that cannot be
//! had is listed in the manifest with why. The bundle is a .tar.gz (a
//! `manifest.json` first) or, with `-o json`, one JSON document; it is
//! written to a temporary name and renamed, so no half-written bundle is
//! left. Through `--server` the node sends the JSON document and this side
//! writes the bundle: the file is the client's.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::output::{Exit, Printer};

/// Bytes one part may take; the rest is cut, and the manifest says so.
pub const PART_MAX: usize = 8 << 20;
/// Bytes the whole bundle may take before compression.
pub const BUNDLE_MAX: usize = 64 << 20;
/// Entries kept of a map dump (conntrack can hold millions).
pub const MAP_ENTRIES_MAX: usize = 10_000;
/// Entries kept of each map: MAP_ENTRIES_MAX, or DPDBG_DEBUGINFO_MAP_MAX (tests).
fn map_entries_max() -> usize {
    std::env::var("DPDBG_DEBUGINFO_MAP_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(MAP_ENTRIES_MAX)
}

/// Flows asked of `dpdbg serve`.
pub const FLOWS: u32 = 200;
/// How long one part may take.
const PART_TIME: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct DebuginfoCmd {
    /// Where to write the bundle (default: dpdbg-debuginfo-NODE-TIME.tar.gz,
    /// or .json with -o json, in the current directory; "-" for stdout).
    /// `--file` as cilium-dbg debuginfo's: `--output` is dpdbg's format flag.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// The server (where `dpdbg serve` listens by default, for its last flows).
    #[arg(skip)]
    pub(crate) server: String,
}

/// One part of the bundle, as the manifest lists it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Entry {
    /// Its file in the bundle (empty when nothing could be collected).
    pub file: String,
    /// What it holds.
    pub what: String,
    /// The command or file it comes from.
    pub source: String,
    /// Collected (perhaps cut short), or not.
    pub collected: bool,
    /// Why it is missing or incomplete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub bytes: usize,
}

/// The whole bundle: the manifest and the parts' contents.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Bundle {
    pub dpdbg_version: String,
    pub node: String,
    pub collected_at: String,
    pub manifest: Vec<Entry>,
    /// File name to content: a JSON value when the part is JSON, else its text.
    pub parts: serde_json::Map<String, Value>,
}

struct Collector {
    bpffs: PathBuf,
    server: String,
    exe: PathBuf,
    bundle: Bundle,
    total: usize,
}

impl Collector {
    fn add(&mut self, file: &str, what: &str, source: &str, got: Result<(Vec<u8>, Option<String>), String>) {
        let mut e = Entry { file: file.into(), what: what.into(), source: source.into(), ..Default::default() };
        match got {
            Ok((mut bytes, note)) => {
                let mut note = note;
                if self.total + bytes.len() > BUNDLE_MAX {
                    let keep = BUNDLE_MAX.saturating_sub(self.total);
                    bytes.truncate(keep);
                    note = Some(format!("cut to {keep} bytes: the bundle is bounded to {BUNDLE_MAX} bytes"));
                }
                self.total += bytes.len();
                e.bytes = bytes.len();
                e.collected = true;
                e.note = note;
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let value = if file.ends_with(".json") {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                } else {
                    Value::String(text)
                };
                self.bundle.parts.insert(file.to_string(), value);
            }
            Err(why) => {
                e.note = Some(why);
            }
        }
        self.bundle.manifest.push(e);
    }

    /// This dpdbg with `args` and `-o FORMAT`: its stdout, at most `max_lines`
    /// lines (then the child is stopped and the cut said), at most PART_MAX bytes.
    fn dpdbg(
        &self,
        args: &[&str],
        format: &str,
        max_lines: Option<usize>,
    ) -> Result<(Vec<u8>, Option<String>), String> {
        let mut child = Command::new(&self.exe)
            .arg("--bpffs")
            .arg(&self.bpffs)
            .args(["-o", format])
            .args(args)
            .env_remove("DPDBG_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running {}: {e}", self.exe.display()))?;
        read_bounded(&mut child, max_lines)
    }

    fn command(&self, cmd: &str, args: &[&str]) -> Result<(Vec<u8>, Option<String>), String> {
        let mut child = Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running {cmd}: {e}"))?;
        read_bounded(&mut child, None)
    }
}

/// Reads a child's stdout up to the bounds, then waits for it (or stops
/// it); its exit code and stderr become the error when it failed.
fn read_bounded(
    child: &mut std::process::Child,
    max_lines: Option<usize>,
) -> Result<(Vec<u8>, Option<String>), String> {
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let err_reader = std::thread::spawn(move || {
        let mut e = Vec::new();
        let _ = stderr.by_ref().take(64 << 10).read_to_end(&mut e);
        e
    });
    let deadline = std::time::Instant::now() + PART_TIME;
    let mut buf = [0u8; 64 << 10];
    let mut note = None;
    loop {
        let n = stdout.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(max) = max_lines {
            let lines = out.iter().filter(|b| **b == b'\n').count();
            if lines >= max {
                let cut =
                    out.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(max - 1).map_or(out.len(), |(i, _)| i + 1);
                out.truncate(cut);
                note = Some(format!("the first {max} entries only (the bundle keeps at most {max} of a map)"));
                let _ = child.kill();
                break;
            }
        }
        if out.len() >= PART_MAX {
            out.truncate(PART_MAX);
            note = Some(format!("cut to {PART_MAX} bytes"));
            let _ = child.kill();
            break;
        }
        if std::time::Instant::now() > deadline {
            note = Some(format!("stopped after {} s", PART_TIME.as_secs()));
            let _ = child.kill();
            break;
        }
    }
    drop(stdout);
    let status = child.wait().map_err(|e| e.to_string())?;
    let err = err_reader.join().unwrap_or_default();
    if note.is_none() && !status.success() {
        let text = String::from_utf8_lossy(&err).trim().to_string();
        // Our own commands say their error as one JSON object under -o json.
        let why = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(text);
        if out.is_empty() {
            return Err(format!("exit {}: {why}", status.code().unwrap_or(-1)));
        }
        note = Some(format!("exit {}: {why}", status.code().unwrap_or(-1)));
    }
    Ok((out, note))
}

fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "node".into())
}

fn now_text() -> String {
    dpdbg::flow::rfc3339(dpdbg::sys::wall_offset_ns() + dpdbg::sys::monotonic_ns() as i128, 0).replace(".Z", "Z")
}

/// The pins under the datapath's directory, one path a line.
fn pins(bpffs: &Path) -> Result<(Vec<u8>, Option<String>), String> {
    fn walk(dir: &Path, base: &Path, out: &mut String) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap_or(&p);
            let dir = p.is_dir();
            out.push_str(&format!("{}{}\n", rel.display(), if dir { "/" } else { "" }));
            if dir {
                walk(&p, base, out)?;
            }
        }
        Ok(())
    }
    let root = dpdbg::datapath::Pins::new(bpffs).root().to_path_buf();
    let mut out = String::new();
    walk(&root, &root, &mut out).map_err(|e| format!("{}: {e}", root.display()))?;
    Ok((out.into_bytes(), None))
}

/// Kernel log lines about BPF (the verifier, JIT, tracepoints, dpdbg).
fn kernel_log(c: &Collector) -> Result<(Vec<u8>, Option<String>), String> {
    let (all, _) = c.command("dmesg", &["--kernel", "--ctime"]).or_else(|_| c.command("dmesg", &[]))?;
    let text = String::from_utf8_lossy(&all);
    let words = ["bpf", "BPF", "verifier", "dpdbg", "xdp", "tcx", "kfree_skb"];
    let lines: Vec<&str> = text.lines().filter(|l| words.iter().any(|w| l.contains(w))).collect();
    let keep = &lines[lines.len().saturating_sub(2000)..];
    let note = (keep.len() < lines.len()).then(|| format!("the last {} of {} lines", keep.len(), lines.len()));
    Ok((keep.join("\n").into_bytes(), note))
}

/// Collects everything on this node.
pub fn collect(bpffs: &Path, server: &str) -> anyhow::Result<Bundle> {
    let exe = std::env::current_exe().context("finding this dpdbg's binary")?;
    let mut c = Collector {
        bpffs: bpffs.to_path_buf(),
        server: server.to_string(),
        exe,
        bundle: Bundle {
            dpdbg_version: env!("CARGO_PKG_VERSION").to_string(),
            node: node_name(),
            collected_at: now_text(),
            ..Default::default()
        },
        total: 0,
    };
    let version = serde_json::json!({
        "dpdbg": env!("CARGO_PKG_VERSION"),
        "node": c.bundle.node,
        "kernel": dpdbg::sys::features(),
        "uname": std::fs::read_to_string("/proc/version").unwrap_or_default().trim(),
        "kernel_btf": Path::new("/sys/kernel/btf/vmlinux").exists(),
        "bpffs": bpffs,
    });
    c.add(
        "version.json",
        "dpdbg's version, the kernel and its features",
        "dpdbg",
        Ok((version.to_string().into_bytes(), None)),
    );
    // The verdict, without moving the node's own "since the last look" counters.
    let tmp = tempfile::tempdir().context("a temporary directory")?;
    let verdict = {
        let opts = dpdbg::verdict::Options {
            lab_state: Some(crate::lab::state_path()),
            state_file: tmp.path().join("status.json"),
        };
        dpdbg::verdict::assess(bpffs, &opts)
            .map_err(|e| e.to_string())
            .and_then(|a| serde_json::to_vec_pretty(&a).map_err(|e| e.to_string()))
            .map(|b| (b, Some("events are counted since the load, not since the node's last look".to_string())))
    };
    c.add("status.json", "the status verdict and every check", "dpdbg status", verdict);
    let st = c.dpdbg(&["datapath", "status"], "json", None);
    let st_json: Value = st.as_ref().ok().and_then(|(b, _)| serde_json::from_slice(b).ok()).unwrap_or_default();
    let names = |list: &str, key: &str| -> Vec<String> {
        st_json[list]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m[key].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (maps, progs, ifaces) = (names("maps", "name"), names("programs", "name"), names("interfaces", "interface"));
    c.add(
        "datapath/status.json",
        "state, features, settings, clock, programs, interfaces, maps and their fill",
        "dpdbg datapath status",
        st,
    );
    for (file, what, args) in [
        ("datapath/config.json", "every setting and whether it changes at run time", &["datapath", "config"][..]),
        ("bpf/endpoints.json", "the endpoints map", &["bpf", "endpoint", "list"]),
        ("bpf/policy.json", "policy rules with their counters", &["bpf", "policy", "get"]),
        ("bpf/ipcache.json", "the ipcache", &["bpf", "ipcache", "list"]),
        ("bpf/metrics.json", "packets and bytes by reason and direction", &["bpf", "metrics", "list"]),
    ] {
        let r = c.dpdbg(args, "json", None);
        c.add(file, what, &format!("dpdbg {}", args.join(" ")), r);
    }
    let r = c.dpdbg(&["bpf", "ct", "list"], "jsonl", Some(map_entries_max()));
    c.add("bpf/ct.jsonl", "conntrack entries, one a line", "dpdbg bpf ct list -o jsonl", r);
    let cap = map_entries_max();
    for m in &maps {
        if matches!(m.as_str(), "events" | "events_perf") {
            let why = "an event buffer holds records for readers, not entries to dump (`dpdbg monitor` reads it)";
            c.add("", &format!("map {m}"), &format!("dpdbg map dump {m}"), Err(why.into()));
            continue;
        }
        let r = c.dpdbg(&["map", "dump", m], "jsonl", Some(cap));
        c.add(
            &format!("maps/{m}.jsonl"),
            &format!("map {m}, decoded through its BTF"),
            &format!("dpdbg map dump {m} -o jsonl"),
            r,
        );
    }
    if maps.is_empty() {
        c.add("maps/", "every dpdbg map", "dpdbg map dump", Err("no datapath is loaded: no map to dump".into()));
    }
    let r = c.dpdbg(&["prog", "list", "--stats", "1"], "json", None);
    c.add(
        "programs/list.json",
        "every program, with its runs and average ns over one second",
        "dpdbg prog list --stats 1",
        r,
    );
    for p in progs.iter().map(String::as_str).chain([dpdbg::kdrop::PROG]) {
        if p == dpdbg::kdrop::PROG && !dpdbg::datapath::Pins::new(bpffs).prog(p).exists() {
            continue;
        }
        let r = c.dpdbg(&["prog", "dump", "xlated", p], "json", None);
        c.add(
            &format!("programs/{p}.xlated.json"),
            &format!("{p}'s translated instructions"),
            &format!("dpdbg prog dump xlated {p}"),
            r,
        );
    }
    // Attachments: TCX links are in the program list; clsact filters are tc's.

    let mut tc = serde_json::Map::new();
    for i in ifaces.iter().collect::<std::collections::BTreeSet<_>>() {
        for hook in ["ingress", "egress"] {
            let v = match c.command("tc", &["-j", "filter", "show", "dev", i, hook]) {
                Ok((b, _)) => serde_json::from_slice(&b).unwrap_or(Value::String(String::from_utf8_lossy(&b).into())),
                Err(e) => Value::String(e),
            };
            tc.insert(format!("{i} {hook}"), v);
        }
    }
    c.add(
        "attachments/tc-filters.json",
        "the tc filters on every attached interface (clsact attachments)",
        "tc -j filter show dev IF ingress|egress",
        Ok((Value::Object(tc).to_string().into_bytes(), None)),
    );
    let r = c.command("bpftool", &["-j", "net", "show"]);
    c.add(
        "attachments/bpftool-net.json",
        "every networking attachment, as bpftool sees it (TCX links, tc, XDP)",
        "bpftool -j net show",
        r,
    );
    c.add(
        "pins.txt",
        "the pins under the datapath's directory",
        &format!("{}", dpdbg::datapath::Pins::new(bpffs).root().display()),
        pins(bpffs),
    );
    let lab = crate::lab::state_path();
    let r = std::fs::read(&lab).map(|b| (b, None)).map_err(|e| format!("{}: {e}", lab.display()));
    c.add("lab.json", "the lab's state", &lab.display().to_string(), r);
    // The last flows, when a server runs here.
    let socket = dpdbg_api::client::unix_path(&c.server);
    let r = match socket {
        Some(s) if !s.exists() => Err(format!("no dpdbg serve here ({} does not exist)", s.display())),
        _ => c.dpdbg(&["--server", &c.server, "observe", "--last", &FLOWS.to_string()], "json", None),
    };
    c.add(
        "flows.jsonl",
        &format!("the last {FLOWS} flows dpdbg serve holds, as `hubble observe -o json` prints them"),
        "dpdbg observe --last N -o json",
        r,
    );
    let r = kernel_log(&c);
    c.add("kernel-log.txt", "kernel log lines about BPF (verifier, JIT, tracepoints, dpdbg)", "dmesg", r);
    Ok(c.bundle)
}

/// Writes the bundle as a .tar.gz: manifest.json first, then every part.
pub fn write_tar(bundle: &Bundle, w: impl Write) -> std::io::Result<()> {
    let gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let prefix = format!("dpdbg-debuginfo-{}", bundle.node);
    let mut add = |name: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
        h.set_cksum();
        tar.append_data(&mut h, format!("{prefix}/{name}"), data)
    };
    let manifest = serde_json::json!({
        "dpdbg_version": bundle.dpdbg_version,
        "node": bundle.node,
        "collected_at": bundle.collected_at,
        "parts": bundle.manifest,
    });
    add("manifest.json", serde_json::to_string_pretty(&manifest).unwrap_or_default().as_bytes())?;
    for (name, v) in &bundle.parts {
        let bytes = match v {
            Value::String(s) => s.clone().into_bytes(),
            other => serde_json::to_vec_pretty(other).unwrap_or_default(),
        };
        add(name, &bytes)?;
    }
    tar.into_inner()?.finish()?.flush()
}

/// Writes `bytes` at `path` through a temporary name in the same directory.
fn write_whole(path: &Path, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".dpdbg-debuginfo-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    write(tmp.as_file_mut()).with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file().sync_all().ok();
    tmp.persist(path).map_err(|e| anyhow::anyhow!("renaming to {}: {}", path.display(), e.error))?;
    Ok(())
}

impl DebuginfoCmd {
    /// Where the bundle goes: the --output given, or a name of its own.
    fn target(&self, node: &str, json: bool) -> PathBuf {
        self.file.clone().unwrap_or_else(|| {
            let t = chrono_free_stamp();
            PathBuf::from(format!("dpdbg-debuginfo-{node}-{t}.{}", if json { "json" } else { "tar.gz" }))
        })
    }

    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        dpdbg::sys::require_privileges("debuginfo")?;
        let bundle = collect(bpffs, &self.server)?;
        self.write(&bundle, p)
    }

    /// Writes a bundle collected here or on a server's node.
    pub fn write(&self, bundle: &Bundle, p: &Printer) -> anyhow::Result<()> {
        let json = p.is_json();
        if self.file.as_deref() == Some(Path::new("-")) {
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer(&mut out, bundle)?;
                out.write_all(b"\n")?;
            } else {
                write_tar(bundle, &mut out)?;
            }
            return Ok(out.flush()?);
        }
        let path = self.target(&bundle.node, json);
        write_whole(&path, |f| {
            if json {
                serde_json::to_writer(&mut *f, bundle).map_err(std::io::Error::other)
            } else {
                write_tar(bundle, &mut *f)
            }
        })?;
        let missing: Vec<&Entry> = bundle.manifest.iter().filter(|e| !e.collected).collect();
        // What was written, on stderr: stdout may be a pipe for the bundle's name.
        eprintln!(
            "dpdbg: wrote {} ({} parts, {} could not be collected{})",
            path.display(),
            bundle.manifest.len() - missing.len(),
            missing.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!(": {}", missing.iter().map(|e| e.source.as_str()).collect::<Vec<_>>().join(", "))
            }
        );
        if !json {
            println!("{}", path.display());
        }
        Ok(())
    }

    /// The same command, for a client that has the node collect.
    pub fn clone_for_remote(c: &DebuginfoCmd) -> DebuginfoCmd {
        DebuginfoCmd { file: c.file.clone(), server: String::new() }
    }

    /// The file this bundle is written to on the node itself (for a server
    /// deciding whether to run it: never through a server).
    pub fn node_file(&self) -> Option<&Path> {
        self.file.as_deref().filter(|f| *f != Path::new("-"))
    }

    /// `--server`: the node collects and sends the JSON document; the bundle
    /// is written here. --file never goes to the node.
    pub fn run_remote(self, server: &str, p: &Printer) -> anyhow::Result<()> {
        let out = capture(server, vec!["debuginfo".into(), "--file".into(), "-".into()])?;
        let bundle: Bundle = serde_json::from_slice(&out)
            .with_context(|| format!("the bundle {server} sent is not a debuginfo document"))?;
        self.write(&bundle, p)
    }
}

/// UTC now as YYYYMMDD-HHMMSS, for file names.
fn chrono_free_stamp() -> String {
    let t = now_text();
    t.chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect::<String>()
        .replace('T', "-")
        .chars()
        .take(15)
        .collect()
}

/// Runs `dpdbg ARGS -o json` on the server's node and returns its stdout;
/// its stderr is copied here, its exit code kept.
fn capture(server: &str, args: Vec<String>) -> anyhow::Result<Vec<u8>> {
    let (code, out, err) = dpdbg_api::client::run_blocking(server, args, "json").map_err(anyhow::Error::msg)?;
    std::io::stderr().write_all(&err)?;
    if code != 0 {
        return Err(Exit(code.clamp(1, 255) as u8).into());
    }
    Ok(out)
}
