//! Annotated pcapng (issue 23, items 2 and 3): `monitor --pcapng` during a
//! burst of denied traffic, and `observe --pcapng` from `dpdbg serve`'s
//! buffer after it, both read back by tshark: the interfaces by name, each
//! packet's comment against the monitor's own JSON for it, drops present
//! with their reason and rule, and the retroactive file equal to what the
//! live capture holds of the dropped packets.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Bpffs, LabGuard, Server, show};
use serde_json::Value;

fn dpdbg(bpffs: &Path, state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dpdbg"));
    c.arg("--bpffs").arg(bpffs).env("DPDBG_LAB_STATE", state);
    c
}

/// One packet as tshark reads it back.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    time_ns: i128,
    interface: String,
    comment: String,
    len: u64,
    cap_len: u64,
    src: String,
    dst: String,
    dport: String,
}

fn tshark(file: &Path) -> Vec<Row> {
    let fields = [
        "frame.time_epoch",
        "frame.interface_name",
        "frame.comment",
        "frame.len",
        "frame.cap_len",
        "ip.src",
        "ip.dst",
        "udp.dstport",
    ];
    let mut c = Command::new("tshark");
    c.arg("-r").arg(file).args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c.output().expect("tshark (scripts/setup.sh installs it)");
    assert!(out.status.success(), "tshark -r {}: {}", file.display(), show(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            assert_eq!(c.len(), fields.len(), "{l}");
            let (s, frac) = c[0].split_once('.').unwrap();
            let frac = format!("{frac:0<9}");
            Row {
                time_ns: s.parse::<i128>().unwrap() * 1_000_000_000 + frac[..9].parse::<i128>().unwrap(),
                interface: c[1].to_string(),
                comment: c[2].to_string(),
                len: c[3].parse().unwrap(),
                cap_len: c[4].parse().unwrap(),
                src: c[5].to_string(),
                dst: c[6].to_string(),
                dport: c[7].to_string(),
            }
        })
        .collect()
}

/// The comment's value for `key` (fields are `key=value` joined by "; ").
fn field<'a>(comment: &'a str, key: &str) -> Option<&'a str> {
    comment.split("; ").find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn identity(id: u64) -> String {
    match id {
        1 => "1 (host)".into(),
        2 => "2 (world)".into(),
        n => n.to_string(),
    }
}

/// What the comment must say of the event `f` (a line of `monitor -j`).
fn check_against_json(row: &Row, f: &Value) {
    let c = &row.comment;
    let s = |k: &str| f[k].as_str().unwrap_or_else(|| panic!("{k} in {f}")).to_string();
    assert_eq!(field(c, "event"), Some(s("type").as_str()), "{c} vs {f}");
    assert_eq!(field(c, "verdict"), Some(s("verdict").as_str()), "{c} vs {f}");
    assert_eq!(field(c, "direction"), Some(s("direction").as_str()), "{c} vs {f}");
    assert_eq!(field(c, "ct_state"), Some(s("ct_state").as_str()), "{c} vs {f}");
    let ids = format!(
        "{} -> {}",
        identity(f["src_identity"].as_u64().unwrap()),
        identity(f["dst_identity"].as_u64().unwrap())
    );
    assert_eq!(field(c, "identity"), Some(ids.as_str()), "{c} vs {f}");
    match f["drop_reason"].as_u64() {
        Some(n) => assert_eq!(field(c, "drop_reason"), Some(format!("{n} ({})", s("drop_reason_desc")).as_str())),
        None => assert_eq!(field(c, "drop_reason"), None, "{c}"),
    }
    assert_eq!(field(c, "policy_match"), f["policy_match"].as_str(), "{c} vs {f}");
    let ep = f["endpoint_id"].as_u64().unwrap();
    if ep != 0 {
        let want = match f["endpoint_name"].as_str() {
            Some(n) => format!("{ep} ({n})"),
            None => ep.to_string(),
        };
        assert_eq!(field(c, "endpoint"), Some(want.as_str()), "{c} vs {f}");
    }
    // Wall-clock nanoseconds (if_tsresol 9), the JSON's time to its microsecond.
    let t = humantime::parse_rfc3339(&s("time")).unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
    assert!((0..1000).contains(&(row.time_ns - t.as_nanos() as i128)), "{row:?} vs {f}");
    let iface = s("interface");
    assert_eq!(row.interface, iface, "the interface block names it: {row:?} vs {f}");
    assert_eq!(field(c, "interface"), Some(iface.as_str()));
    assert_eq!(row.len, f["orig_len"].as_u64().unwrap(), "{row:?} vs {f}");
    assert_eq!(row.cap_len, f["cap_len"].as_u64().unwrap(), "{row:?} vs {f}");
    if let Some(ip) = f["src_ip"].as_str().filter(|ip| !ip.contains(':')) {
        assert_eq!(row.src, ip);
        assert_eq!(row.dst, s("dst_ip"));
    }
}

/// A lab whose ep2 takes ICMP in, denies UDP 5353 from ep1 by an L3-L4
/// rule (Policy denied by denylist) and anything else by default (Policy
/// denied); torn down on drop.
struct DenyingLab {
    _lab: LabGuard,
    fs: Bpffs,
    dir: tempfile::TempDir,
    state: std::path::PathBuf,
    ns1: String,
    ip2: String,
    id1: u64,
    ep2: String,
    host_if2: String,
}

impl DenyingLab {
    fn up() -> DenyingLab {
        let fs = Bpffs::new();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("lab.json");
        let guard = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
        let mut lab = DenyingLab {
            _lab: guard,
            fs,
            dir,
            state,
            ns1: String::new(),
            ip2: String::new(),
            id1: 0,
            ep2: String::new(),
            host_if2: String::new(),
        };
        let up: Value =
            serde_json::from_slice(&lab.ok(&["lab", "up", "--endpoints", "2", "-o", "json"]).stdout).unwrap();
        let ep = |i: usize, k: &str| up["endpoints"][i][k].clone();
        let text = |v: Value| v.as_str().unwrap().to_string();
        lab.ns1 = text(ep(0, "netns"));
        lab.ip2 = text(ep(1, "ipv4"));
        lab.id1 = ep(0, "identity").as_u64().unwrap();
        lab.ep2 = ep(1, "endpoint_id").as_u64().unwrap().to_string();
        lab.host_if2 = text(ep(1, "host_if"));
        let (ep2, id1) = (lab.ep2.clone(), lab.id1.to_string());
        let rule = |action: &str, proto: &str, port: Option<&str>, identity: Option<&str>| {
            let mut a = vec!["bpf", "policy", "add", "--endpoint", &ep2, "--direction", "ingress", "--action", action];
            a.extend(["--proto", proto]);
            a.extend(port.map(|p| ["--port", p]).into_iter().flatten());
            a.extend(identity.map(|i| ["--identity", i]).into_iter().flatten());
            a.into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        for args in [
            vec!["bpf".to_string(), "endpoint".into(), "set".into(), ep2.clone(), "--enforce".into(), "ingress".into()],
            rule("allow", "icmp", None, None),
            rule("deny", "udp", Some("5353"), Some(&id1)),
        ] {
            lab.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        }
        lab
    }

    fn cmd(&self) -> Command {
        dpdbg(&self.fs.0, &self.state)
    }

    /// Runs dpdbg, which must succeed.
    fn ok(&self, args: &[&str]) -> Output {
        let o = self.cmd().args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", show(&o));
        o
    }

    /// 15 datagrams from ep1 to each of ep2's ports 5353 and 7000, a ping beside them.
    fn burst(&self) {
        let ip2 = &self.ip2;
        let burst = format!(
            "for i in $(seq 15); do echo x > /dev/udp/{ip2}/5353; echo y > /dev/udp/{ip2}/7000; done; ping -c 2 -i 0.2 -W 1 {ip2} >/dev/null"
        );
        let o = Command::new("ip").args(["netns", "exec", &self.ns1, "bash", "-c", &burst]).output().unwrap();
        assert!(o.status.success(), "{}", show(&o));
    }
}

#[test]
fn pcapng_live_and_after_the_fact_as_tshark_reads_them() {
    let lab = DenyingLab::up();
    let (fs, dir) = (&lab.fs, &lab.dir);
    let run = |args: &[&str]| lab.ok(args);
    let (id1, ep2, host_if2) = (lab.id1, lab.ep2.clone(), lab.host_if2.clone());

    let socket = dir.path().join("dpdbg.sock");
    let sock = socket.display().to_string();
    let port = common::free_port();
    let tcp = format!("127.0.0.1:{port}");
    let _server = Server::start(&fs.0, &socket, &["--listen", &tcp]);
    // The server reads names once a second.
    std::thread::sleep(Duration::from_millis(1500));

    // The live capture: pcapng on stdout, the same events as JSON on
    // stderr, and the raw records for a replay.
    let live = dir.path().join("live.pcapng");
    let jsonl = dir.path().join("live.jsonl");
    let rec = dir.path().join("live.rec");
    let mut mon = lab
        .cmd()
        .env("DPDBG_EVENTS_SOCKET", &socket)
        .args(["monitor", "-j", "--pcapng", "-", "--until", "6s", "-w"])
        .arg(&rec)
        .stdout(std::fs::File::create(&live).unwrap())
        .stderr(std::fs::File::create(&jsonl).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    lab.burst();
    let m = mon.wait().unwrap();
    assert!(m.success(), "{}", std::fs::read_to_string(&jsonl).unwrap());

    let text = std::fs::read_to_string(&jsonl).unwrap();
    let flows: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let rows = tshark(&live);
    assert_eq!(rows.len(), flows.len(), "a packet block per event: {text}");
    for (row, f) in rows.iter().zip(&flows) {
        check_against_json(row, f);
    }
    // Drops are there (tcpdump on the veth never sees them), each with its
    // reason and the rule behind it.
    let drops: Vec<&Row> = rows.iter().filter(|r| field(&r.comment, "event") == Some("drop")).collect();
    let by_denylist: Vec<&&Row> = drops.iter().filter(|r| r.dport == "5353").collect();
    let by_default: Vec<&&Row> = drops.iter().filter(|r| r.dport == "7000").collect();
    assert_eq!((by_denylist.len(), by_default.len()), (15, 15), "{rows:#?}");
    for r in &by_denylist {
        assert_eq!(field(&r.comment, "drop_reason"), Some("181 (Policy denied by denylist)"), "{}", r.comment);
        assert_eq!(
            field(&r.comment, "rule"),
            Some(format!("L3-L4 deny: identity {id1}, udp/5353").as_str()),
            "{}",
            r.comment
        );
    }
    for r in &by_default {
        assert_eq!(field(&r.comment, "drop_reason"), Some("133 (Policy denied)"), "{}", r.comment);
        assert_eq!(field(&r.comment, "rule"), Some("none matched: denied by default"), "{}", r.comment);
        assert_eq!(field(&r.comment, "endpoint"), Some(format!("{ep2} (lab/ep2)").as_str()), "{}", r.comment);
        assert_eq!(r.interface, host_if2);
    }
    assert!(rows.iter().any(|r| field(&r.comment, "verdict") == Some("FORWARDED")), "the ping's traces too");
    // Two interfaces seen, each described once.
    let ifaces = Command::new("tshark")
        .arg("-r")
        .arg(&live)
        .args(["-T", "fields", "-e", "frame.interface_id"])
        .output()
        .unwrap();
    let mut ids: Vec<String> = String::from_utf8_lossy(&ifaces.stdout).lines().map(str::to_string).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["0", "1"], "one interface block per interface");

    // A replay of the raw records writes the same file's packets.
    let replayed = dir.path().join("replay.pcapng");
    run(&["monitor", "-r", rec.to_str().unwrap(), "--pcapng", replayed.to_str().unwrap()]);
    assert_eq!(tshark(&replayed), rows, "-r gives what was captured live");
    // A file that cannot be made is named, and nothing panics.
    let o = lab
        .cmd()
        .args(["monitor", "-r", rec.to_str().unwrap(), "--pcapng", "/nonexistent/dir/x.pcapng"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--pcapng: creating /nonexistent/dir/x.pcapng") && !err.contains("panicked"), "{}", show(&o));
    // With a filter, only what it passes; a drop still names its rule when
    // the verdict before it was filtered out.
    let only_drops = dir.path().join("drops.pcapng");
    run(&["monitor", "-r", rec.to_str().unwrap(), "-t", "drop", "--pcapng", only_drops.to_str().unwrap()]);
    let want: Vec<Row> = rows.iter().filter(|r| field(&r.comment, "event") == Some("drop")).cloned().collect();
    assert_eq!(tshark(&only_drops), want);

    // After the fact: the server still holds them.
    let retro = dir.path().join("d.pcapng");
    let o = run(&[
        "observe",
        "--server",
        &sock,
        "--last",
        "100",
        "--verdict",
        "DROPPED",
        "--pcapng",
        retro.to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&o.stderr);
    let got = tshark(&retro);
    let dropped: Vec<Row> = rows.iter().filter(|r| field(&r.comment, "verdict") == Some("DROPPED")).cloned().collect();
    assert_eq!(dropped.len(), 60, "a verdict and a drop per datagram: {dropped:#?}");
    assert!(said.contains(&format!("Wrote 60 packets (60 dropped) to {}", retro.display())), "{said}");
    assert_eq!(got.len(), dropped.len(), "{got:#?}");
    for (g, l) in got.iter().zip(&dropped) {
        // Each reader takes the wall clock's offset when it reads: a few
        // microseconds apart at most.
        assert!((g.time_ns - l.time_ns).abs() < 1_000_000, "{g:?} vs {l:?}");
        assert_eq!(Row { time_ns: l.time_ns, ..g.clone() }, *l);
    }
    // Each dropped packet shows its reason and its rule.
    for r in got.iter().filter(|r| field(&r.comment, "event") == Some("drop")) {
        assert!(field(&r.comment, "drop_reason").is_some() && field(&r.comment, "rule").is_some(), "{}", r.comment);
    }
    // Hubble's filters hold: only the denylist's port.
    let o = run(&["observe", "--server", &sock, "--last", "100", "--to-port", "5353", "-t", "drop", "--pcapng", "-"]);
    let p = dir.path().join("port.pcapng");
    std::fs::write(&p, &o.stdout).unwrap();
    let only = tshark(&p);
    assert_eq!(only.len(), 15);
    assert!(only.iter().all(|r| r.dport == "5353" && field(&r.comment, "event") == Some("drop")), "{only:#?}");

    // Packet bytes over TCP without client certificates: refused as
    // dpdbg.v1.Events is, and no file made.
    let refused = dir.path().join("refused.pcapng");
    let o = lab
        .cmd()
        .args(["observe", "--server", &tcp, "--last", "10", "--pcapng", refused.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("client certificate"), "{}", show(&o));
    assert!(!refused.exists());
}

#[test]
fn pcapng_flags_are_checked() {
    let usage = |args: &[&str], says: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_dpdbg")).args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says) && !err.contains("panicked"), "{args:?}: {}", show(&o));
    };
    usage(&["monitor", "--pcapng"], "--pcapng");
    usage(&["monitor", "--pcap", "a", "--pcapng", "b"], "cannot be used with");
    usage(&["observe", "--pcapng"], "--pcapng");
    usage(&["observe", "--pcapng", "x", "--input-file", "y"], "cannot be used with");
    usage(&["observe", "--pcapng", "x", "--print-raw-filters"], "cannot be used with");
}

/// Through --server on TCP with a client certificate the file is written on
/// the client, byte for byte what the unix socket gives; a follow started
/// before the burst writes the same packets as they come.
#[test]
fn pcapng_through_mutual_tls_and_by_following() {
    let lab = DenyingLab::up();
    let dir = lab.dir.path();
    let pki = common::pki::pki(dir);
    let socket = dir.join("dpdbg.sock");
    let sock = socket.display().to_string();
    let addr = format!("127.0.0.1:{}", common::free_port());
    let (server_cert, server_key, ca) = (pki.path("server.pem"), pki.path("server.key"), pki.path("ca.pem"));
    let tls = ["--tls-cert", &server_cert, "--tls-key", &server_key, "--tls-client-ca", &ca];
    let _server = Server::start(&lab.fs.0, &socket, &[&["--listen", addr.as_str()][..], &tls[..]].concat());
    let (cert, key) = (pki.path("client.pem"), pki.path("client.key"));
    let remote = ["--server", addr.as_str(), "--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];
    std::thread::sleep(Duration::from_millis(1500));

    let followed = dir.join("follow.pcapng");
    let follow = lab
        .cmd()
        .args(remote)
        .args(["observe", "-f", "--verdict", "DROPPED", "--until", "+5s", "--pcapng"])
        .arg(&followed)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    lab.burst();
    let f = follow.wait_with_output().unwrap();
    assert!(f.status.success(), "{}", show(&f));
    assert!(String::from_utf8_lossy(&f.stderr).contains("Wrote 60 packets (60 dropped)"), "{}", show(&f));

    let over_tls = dir.join("tls.pcapng");
    let over_unix = dir.join("unix.pcapng");
    let ask = ["observe", "--last", "100", "--verdict", "DROPPED", "--pcapng"];
    lab.ok(&[&remote[..], &ask[..], &[over_tls.to_str().unwrap()]].concat());
    lab.ok(&[&["--server", sock.as_str()][..], &ask[..], &[over_unix.to_str().unwrap()]].concat());
    let (tls_bytes, unix_bytes) = (std::fs::read(&over_tls).unwrap(), std::fs::read(&over_unix).unwrap());
    assert_eq!(tls_bytes, unix_bytes, "the same file through either");
    let rows = tshark(&over_tls);
    assert_eq!(rows.len(), 60);
    assert_eq!(tshark(&followed), rows, "the follow wrote what the buffer still holds");
    assert!(rows.iter().all(|r| r.interface == lab.host_if2 && field(&r.comment, "rule").is_some()), "{rows:#?}");
}
