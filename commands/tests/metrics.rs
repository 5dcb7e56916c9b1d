//! `dpdbg serve --metrics` held to the real engine: two nodes (each its own
//! bpffs, lab and server, `--node-name node-a|node-b`) scraped by Debian's
//! Prometheus on loopback; after lab traffic with policy drops, PromQL
//! through Prometheus' HTTP API equals what `bpf metrics list`, `bpf ct
//! list` and `observe` say on each node at that time; `promtool check
//! metrics` passes on the exposition; a scrape costs no more than `bpf
//! metrics list`. Beside them: a scrape while no datapath is loaded (the
//! server's own metrics, the datapath's absent, no error page), and the
//! bad addresses (in use: exit 1 naming it; not loopback: exit 2).

mod common;

use common::{Bpffs, CliLab, Server, free_port};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// These tests bring up labs and servers: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ok_json(o: Output, what: &str) -> Value {
    assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// One HTTP/1.1 GET (the connection closed after it): status, headers, body.
fn http_get(addr: &str, target: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {target} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn scrape(addr: &str) -> String {
    let (status, head, body) = http_get(addr, "/metrics", None);
    assert_eq!(status, 200, "GET /metrics: {head}\n{body}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    body
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `promtool check metrics` on an exposition: Ok, or what it said.
fn promtool(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package): run scripts/setup.sh");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    }
}

/// Prometheus on loopback with its own storage, killed on drop.
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Prometheus scraping `targets` (metrics address, node name) with the
    /// `dpdbg` job of deploy/prometheus-scrape.yaml: its pod discovery
    /// (Debian's Prometheus is built without Kubernetes discovery) becomes
    /// static targets carrying the labels the discovery gives a pod, so the
    /// job's relabelling picks the targets: annotated dpdbg pods kept, the
    /// port annotation put in the address, the node's name as `node`. Two
    /// more pods that must be dropped ride along: one not dpdbg, one not
    /// annotated for scraping.
    fn start(targets: &[(&str, &str)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus-scrape.yaml");
        let mut pods: Vec<Value> =
            targets.iter().map(|(addr, node)| pod("dpdbg", "true", addr.rsplit(':').next().unwrap(), node)).collect();
        pods.push(pod("other", "true", "1", "node-x"));
        pods.push(pod("dpdbg", "false", "1", "node-y"));
        let script = r#"
import json, sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "dpdbg")
del job["kubernetes_sd_configs"]
job["static_configs"] = json.loads(sys.argv[2])
cfg["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s"}
cfg["scrape_configs"] = [job]
print(yaml.safe_dump(cfg))
"#;
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(&deploy)
            .arg(serde_json::to_string(&pods).unwrap())
            .output()
            .expect("python3 with yaml (python3-yaml: scripts/setup.sh)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, &out.stdout).unwrap();
        let out = Command::new("promtool").arg("check").arg("config").arg(&file).output().expect("promtool");
        assert!(out.status.success(), "promtool check config: {}", String::from_utf8_lossy(&out.stdout));
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (Debian's prometheus package): run scripts/setup.sh");
        let p = Prometheus { child, addr, _dir: dir };
        let t = Instant::now();
        loop {
            if std::net::TcpStream::connect(&p.addr).is_ok() && http_get(&p.addr, "/-/ready", None).0 == 200 {
                return p;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "prometheus was not ready in 30 s: {}", p.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: each series' labels and value.
    fn query(&self, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let (status, _, body) = http_get(&self.addr, &format!("/api/v1/query?query={}", urlencode(q)), None);
        assert_eq!(status, 200, "{q}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{q}: {body}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (labels, r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
            })
            .collect()
    }

    /// `q` for one instance, keyed by the values of `by` (joined with '/').
    fn by(&self, q: &str, instance: &str, by: &[&str]) -> BTreeMap<String, u64> {
        self.query(q)
            .into_iter()
            .filter(|(l, _)| l.get("instance").map(String::as_str) == Some(instance))
            .map(|(l, v)| {
                (by.iter().map(|k| l.get(*k).cloned().unwrap_or_default()).collect::<Vec<_>>().join("/"), v as u64)
            })
            .collect()
    }
}

/// A static target standing for a pod as Kubernetes discovery describes it.
fn pod(app: &str, scrape: &str, port: &str, node: &str) -> Value {
    serde_json::json!({
        "targets": ["127.0.0.1:9"],
        "labels": {
            "__meta_kubernetes_pod_label_app_kubernetes_io_name": app,
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape": scrape,
            "__meta_kubernetes_pod_annotation_prometheus_io_port": port,
            "__meta_kubernetes_pod_node_name": node,
        }
    })
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One node: a lab on its own bpffs, and its server with --metrics.
struct Node {
    name: &'static str,
    metrics: String,
    socket: PathBuf,
    // Declared before the lab: the server stops first.
    _server: Server,
    lab: CliLab,
}

impl Node {
    fn up(name: &'static str) -> Node {
        let lab = CliLab::up();
        let socket = lab.dir.path().join("dpdbg.sock");
        let metrics = format!("127.0.0.1:{}", free_port());
        let server =
            Server::start(&lab.fs.0, &socket, &["--metrics", &metrics, "--node-name", name, "--ct-gc-interval", "0"]);
        let t = Instant::now();
        while std::net::TcpStream::connect(&metrics).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "{name}: nothing answers on {metrics}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Node { name, metrics, socket, _server: server, lab }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.lab.run(args)
    }

    fn ok(&self, args: &[&str]) {
        let o = self.run(args);
        assert!(o.status.success(), "{} {args:?}: {}", self.name, String::from_utf8_lossy(&o.stderr));
    }
}

/// The hubble_drop_total reason label (flow.proto's DropReason) of a drop reason number.
fn hubble_reason(n: u64) -> &'static str {
    match n {
        132 => "INVALID_SOURCE_IP",
        133 => "POLICY_DENIED",
        134 => "INVALID_PACKET_DROPPED",
        151 => "STALE_OR_UNROUTABLE_IP",
        181 => "POLICY_DENY",
        _ => panic!("drop reason {n}: add its DropReason name to the test"),
    }
}

/// What the node's own commands say, keyed as the PromQL below keys it.
#[derive(Debug, PartialEq, Eq)]
struct Truth {
    drops: BTreeMap<String, u64>,
    drop_bytes: BTreeMap<String, u64>,
    forwards: BTreeMap<String, u64>,
    forward_bytes: BTreeMap<String, u64>,
    lost: u64,
    hubble_drops: BTreeMap<String, u64>,
    ct: BTreeMap<String, u64>,
    flows: BTreeMap<String, u64>,
    verdicts: BTreeMap<String, u64>,
}

fn truth(node: &Node) -> Truth {
    let rows = ok_json(node.run(&["bpf", "metrics", "list", "-o", "json"]), "bpf metrics list");
    let mut t = Truth {
        drops: BTreeMap::new(),
        drop_bytes: BTreeMap::new(),
        forwards: BTreeMap::new(),
        forward_bytes: BTreeMap::new(),
        lost: 0,
        hubble_drops: BTreeMap::new(),
        ct: BTreeMap::new(),
        flows: BTreeMap::new(),
        verdicts: BTreeMap::new(),
    };
    for r in rows.as_array().unwrap() {
        let (reason, text) = (r["reason"].as_u64().unwrap(), r["reason_text"].as_str().unwrap().to_string());
        let dir = r["direction"].as_str().unwrap().to_ascii_uppercase();
        let (p, b) = (r["packets"].as_u64().unwrap(), r["bytes"].as_u64().unwrap());
        match reason {
            242 => t.lost += p,
            243 => {}
            1..240 => {
                *t.drops.entry(text.clone()).or_default() += p;
                *t.drop_bytes.entry(format!("{text}/{dir}")).or_default() += b;
            }
            _ => {
                *t.forwards.entry(dir.clone()).or_default() += p;
                *t.forward_bytes.entry(dir).or_default() += b;
            }
        }
    }
    for (family, flag) in [("ipv4", "--ipv4"), ("ipv6", "--ipv6")] {
        let ct = ok_json(node.run(&["bpf", "ct", "list", flag, "-o", "json"]), "bpf ct list");
        t.ct.insert(family.to_string(), ct.as_array().unwrap().len() as u64);
    }
    // Every flow the server read, as Hubble's JSON: fewer than its buffer holds.
    let sock = node.socket.to_str().unwrap();
    let o = node.run(&["observe", "--server", sock, "--all", "-o", "jsonl"]);
    assert!(o.status.success(), "observe: {}", String::from_utf8_lossy(&o.stderr));
    let flows: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(flows.len() < 4096, "the server's buffer holds every flow it read");
    for f in &flows {
        let f = &f["flow"];
        let ty = f["event_type"]["type"].as_u64().unwrap_or(0);
        let verdict = f["verdict"].as_str().unwrap_or("VERDICT_UNKNOWN").to_string();
        let name = match ty {
            1 => "Drop",
            4 => "Trace",
            5 => "PolicyVerdict",
            _ => "Unknown",
        };
        *t.flows.entry(format!("{name}/{verdict}")).or_default() += 1;
        if ty == 1 {
            let desc = f["drop_reason_desc"].as_str().filter(|d| *d != "DROP_REASON_UNKNOWN");
            let reason = match desc {
                Some(d) => d.to_string(),
                // A kernel drop: its reason is the kernel's, named in the summary.
                None => {
                    let summary = f["Summary"].as_str().unwrap_or_default();
                    let (_, rest) =
                        summary.split_once("kernel drop (").unwrap_or_else(|| panic!("a drop without a reason: {f}"));
                    rest.split_once(')').unwrap().0.to_string()
                }
            };
            *t.hubble_drops.entry(reason).or_default() += 1;
        }
        if ty == 5 && f["source"]["identity"].as_u64() != Some(1) {
            let direction = f["traffic_direction"].as_str().unwrap().to_ascii_lowercase();
            let matched = match f["policy_match_type"].as_u64().unwrap_or(0) {
                1 => "l3-only",
                2 => "l3-l4",
                3 => "l4-only",
                4 => "all",
                _ => "none",
            };
            *t.verdicts.entry(format!("{direction}/{matched}/{}", verdict.to_ascii_lowercase())).or_default() += 1;
        }
    }
    t
}

/// What Prometheus holds for the node, keyed as `truth` keys it.
fn from_prometheus(p: &Prometheus, node: &Node) -> Truth {
    let i = node.metrics.as_str();
    Truth {
        drops: p.by("sum by (instance, reason) (cilium_drop_count_total)", i, &["reason"]),
        drop_bytes: p.by("sum by (instance, reason, direction) (cilium_drop_bytes_total)", i, &["reason", "direction"]),
        forwards: p.by("sum by (instance, direction) (cilium_forward_count_total)", i, &["direction"]),
        forward_bytes: p.by("sum by (instance, direction) (cilium_forward_bytes_total)", i, &["direction"]),
        lost: p.by("hubble_lost_events_total{source=\"perf_event_ring_buffer\"}", i, &[]).values().sum(),
        hubble_drops: p.by("sum by (instance, reason) (hubble_drop_total)", i, &["reason"]),
        ct: p.by("dpdbg_conntrack_entries", i, &["family"]),
        flows: p.by("sum by (instance, type, verdict) (hubble_flows_processed_total)", i, &["type", "verdict"]),
        verdicts: p.by(
            "sum by (instance, direction, match, action) (hubble_policy_verdicts_total)",
            i,
            &["direction", "match", "action"],
        ),
    }
}

/// Waits until Prometheus has ingested a scrape of `node` that began after `after`.
fn scraped_after(p: &Prometheus, node: &Node, after: f64) {
    let t = Instant::now();
    loop {
        let last = p.query(&format!("timestamp(up{{instance=\"{}\"}})", node.metrics)).first().map_or(0.0, |(_, v)| *v);
        if last > after {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no scrape of {} in 20 s: {}", node.name, p.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads the node's truth before and after a scrape: when nothing moved
/// between the two readings (the lab's IPv6 neighbour discovery moves
/// counters now and then), the scrape between them saw exactly that, and
/// Prometheus must say the same.
fn agrees(p: &Prometheus, node: &Node) -> Truth {
    for _ in 0..15 {
        let before = truth(node);
        scraped_after(p, node, now());
        let prom = from_prometheus(p, node);
        let after = truth(node);
        if before != after {
            continue;
        }
        assert_eq!(prom, before, "{}: Prometheus against the node's own commands", node.name);
        return before;
    }
    panic!("{}: the counters never held still across a scrape", node.name);
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn prometheus_scrapes_two_nodes_and_answers_with_their_counters() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let a = Node::up("node-a");
    let b = Node::up("node-b");
    // node-a: ep2 takes ICMP from ep1 and nothing else: TCP and UDP are
    // dropped, Policy denied (133). node-b: ep2 takes everything from ep1
    // but UDP to 5353 (the lab's), which a deny drops (181, Policy denied by
    // denylist).
    for n in [&a, &b] {
        n.ok(&["bpf", "endpoint", "set", "102", "--enforce", "ingress"]);
    }
    for proto in ["icmp", "icmpv6"] {
        a.ok(&[
            "bpf",
            "policy",
            "add",
            "--endpoint",
            "102",
            "--identity",
            "1001",
            "--proto",
            proto,
            "--direction",
            "ingress",
            "--action",
            "allow",
        ]);
    }
    b.ok(&[
        "bpf",
        "policy",
        "add",
        "--endpoint",
        "102",
        "--identity",
        "1001",
        "--direction",
        "ingress",
        "--action",
        "allow",
    ]);
    b.ok(&[
        "bpf",
        "policy",
        "add",
        "--endpoint",
        "102",
        "--identity",
        "1001",
        "--proto",
        "udp",
        "--port",
        "5353",
        "--direction",
        "ingress",
        "--action",
        "deny",
    ]);
    let prom = Prometheus::start(&[(&a.metrics, a.name), (&b.metrics, b.name)]);
    // The lab's traffic fails where policy drops it: exit codes are not the point here.
    for n in [&a, &a, &b] {
        let _ = n.run(&["lab", "traffic"]);
    }

    let ta = agrees(&prom, &a);
    let tb = agrees(&prom, &b);
    assert!(ta.drops.get("Policy denied").is_some_and(|n| *n > 0), "node-a dropped by policy: {ta:?}");
    assert!(tb.drops.get("Policy denied by denylist").is_some_and(|n| *n > 0), "node-b dropped by a deny: {tb:?}");
    assert!(!tb.drops.contains_key("Policy denied"), "node-b's allow covers all but UDP: {tb:?}");
    assert!(ta.forwards.values().all(|n| *n > 0) && ta.forwards.len() == 2, "{ta:?}");
    assert_eq!((ta.lost, tb.lost), (0, 0), "no events lost in the lab");
    // Every drop the datapath counted came to the server as a drop event:
    // hubble_drop_total equals cilium_drop_count_total, reason for reason.
    for t in [&ta, &tb] {
        let by_number: BTreeMap<String, u64> = t
            .drops
            .iter()
            .map(|(text, n)| {
                let number = match text.as_str() {
                    "Policy denied" => 133,
                    "Policy denied by denylist" => 181,
                    "Invalid source ip" => 132,
                    "Stale or unroutable IP" => 151,
                    other => panic!("drop reason {other:?}: add it to the test"),
                };
                (hubble_reason(number).to_string(), *n)
            })
            .collect();
        // Kernel drops (the kernel's reasons) are in hubble_drop_total too, not in cilium's.
        let datapath: BTreeMap<String, u64> =
            t.hubble_drops.iter().filter(|(r, _)| by_number.contains_key(*r)).map(|(r, n)| (r.clone(), *n)).collect();
        assert_eq!(datapath, by_number);
        assert!(t.verdicts.keys().any(|k| k.ends_with("/dropped")), "denied verdicts counted: {:?}", t.verdicts);
        assert!(t.verdicts.keys().any(|k| k.ends_with("/forwarded")), "allowed verdicts counted: {:?}", t.verdicts);
    }
    assert_ne!(ta.drops, tb.drops, "each node answers with its own counters");

    // Both targets up, labelled as the scrape config names them; the pods
    // the relabelling drops are not scraped.
    let up = prom.query("up");
    assert_eq!(up.len(), 2, "only the annotated dpdbg pods: {up:?}");
    for n in [&a, &b] {
        assert!(
            up.iter().any(|(l, v)| l.get("instance") == Some(&n.metrics)
                && l.get("node").map(String::as_str) == Some(n.name)
                && *v == 1.0),
            "{} up: {up:?}",
            n.name
        );
    }
    // Map pressure is the conntrack fill over its size.
    let status = ok_json(a.run(&["datapath", "status", "-o", "json"]), "datapath status");
    let max = |name: &str| {
        status["maps"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["max_entries"].as_f64().unwrap()
    };
    // One query, so both come from the same scrape.
    let both = prom.query(&format!(
        "{{__name__=~\"cilium_bpf_map_pressure|dpdbg_conntrack_entries\", instance=\"{}\"}}",
        a.metrics
    ));
    let pressure: Vec<_> = both.iter().filter(|(l, _)| l["__name__"] == "cilium_bpf_map_pressure").collect();
    let names: Vec<&str> = pressure.iter().map(|(l, _)| l["map_name"].as_str()).collect();
    for m in ["endpoints", "ipcache", "policy", "ct4", "ct6", "frags"] {
        assert!(names.contains(&m), "cilium_bpf_map_pressure{{map_name={m:?}}}: {names:?}");
    }
    // Pressure is entries over max_entries (the entries held to `bpf ct list` above).
    let of = |name: &str, key: &str, value: &str| {
        both.iter().find(|(l, _)| l["__name__"] == name && l.get(key).map(String::as_str) == Some(value)).unwrap().1
    };
    for (map, family) in [("ct4", "ipv4"), ("ct6", "ipv6")] {
        let (p, n) = (of("cilium_bpf_map_pressure", "map_name", map), of("dpdbg_conntrack_entries", "family", family));
        assert!((p * max(map) - n).abs() < 0.5, "{map}: pressure {p}, entries {n}");
    }
    assert!(of("dpdbg_conntrack_entries", "family", "ipv4") > 0.0, "the lab's connections are tracked");
    assert_eq!(of("cilium_bpf_map_pressure", "map_name", "policy"), 2.0 / max("policy"), "node-a has two rules");

    // promtool holds the exposition to the format's rules.
    let text = scrape(&a.metrics);
    if let Err(e) = promtool(&text) {
        panic!("promtool check metrics:\n{e}\n--- exposition:\n{text}");
    }
    for name in [
        "cilium_forward_count_total",
        "cilium_forward_bytes_total",
        "cilium_drop_count_total",
        "cilium_drop_bytes_total",
        "cilium_bpf_map_pressure",
        "dpdbg_conntrack_entries",
        "hubble_lost_events_total",
        "dpdbg_events_undecodable_total",
        "hubble_flows_processed_total",
        "hubble_drop_total",
        "hubble_policy_verdicts_total",
        "dpdbg_serve_subscribers",
        "dpdbg_serve_subscriber_lost_total",
        "dpdbg_serve_flows_buffered",
        "dpdbg_serve_flows_buffer_capacity",
        "dpdbg_serve_records_undecodable_total",
        "dpdbg_serve_datapath_loaded",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} in the exposition:\n{text}");
    }
    assert!(text.contains("cilium_drop_count_total{reason=\"Policy denied\",direction=\"INGRESS\"}"), "{text}");
    // OpenMetrics for a scraper that asks for it (Prometheus does).
    let (status, head, om) = http_get(&a.metrics, "/metrics", Some("application/openmetrics-text;version=1.0.0"));
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(om.ends_with("# EOF\n"), "{om}");

    // A monitor beside the server is a subscriber while it reads.
    let mut monitor = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&a.lab.fs.0)
        .args(["monitor", "-o", "jsonl"])
        .env("DPDBG_EVENTS_SOCKET", &a.socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let subscribers = |want: &str| {
        let t = Instant::now();
        while !scrape(&a.metrics).contains(&format!("dpdbg_serve_subscribers{{kind=\"monitor\"}} {want}\n")) {
            assert!(t.elapsed() < Duration::from_secs(10), "dpdbg_serve_subscribers{{kind=\"monitor\"}} never {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    subscribers("1");
    let _ = monitor.kill();
    let _ = monitor.wait();
    subscribers("0");

    // What a scrape costs beside `bpf metrics list` (a process that reads
    // the metrics map and prints it), taken in turns.
    let (mut scrapes, mut lists) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        let t = Instant::now();
        let _ = scrape(&a.metrics);
        scrapes.push(t.elapsed());
        let t = Instant::now();
        let o = a.run(&["bpf", "metrics", "list", "-o", "json"]);
        lists.push(t.elapsed());
        assert!(o.status.success());
    }
    let (s, l) = (median(scrapes), median(lists));
    println!(
        "a scrape of /metrics: median {:.2} ms; `dpdbg bpf metrics list -o json`: median {:.2} ms; ratio {:.2}x",
        s.as_secs_f64() * 1e3,
        l.as_secs_f64() * 1e3,
        s.as_secs_f64() / l.as_secs_f64()
    );
    assert!(s <= l, "a scrape ({s:?}) costs no more than bpf metrics list ({l:?})");
    drop(prom);
}

#[test]
fn a_scrape_without_a_datapath_is_the_servers_own_metrics() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dpdbg.sock");
    let metrics = format!("127.0.0.1:{}", free_port());
    let _server = Server::start(&fs.0, &socket, &["--metrics", &metrics]);
    let t = Instant::now();
    while std::net::TcpStream::connect(&metrics).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "nothing answers on {metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = scrape(&metrics);
    assert!(text.contains("dpdbg_serve_datapath_loaded 0\n"), "{text}");
    assert!(text.contains("dpdbg_serve_subscribers{kind=\"observer\"} 0\n"), "{text}");
    assert!(!text.contains("cilium_"), "no datapath, no datapath metrics:\n{text}");
    promtool(&text).unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\n{text}"));
    assert_eq!(http_get(&metrics, "/", None).0, 404);

    // Loaded, the datapath's metrics come; unloaded, they go again.
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_dpdbg")).arg("--bpffs").arg(&fs.0).args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    let until = |want: &dyn Fn(&str) -> bool, what: &str| {
        let t = Instant::now();
        loop {
            let text = scrape(&metrics);
            if want(&text) {
                return text;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "{what}:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    run(&["datapath", "load"]);
    let text = until(&|t| t.contains("cilium_bpf_map_pressure{map_name=\"ct4\"} "), "map pressure once loaded");
    assert!(text.contains("dpdbg_serve_datapath_loaded 1\n"), "{text}");
    promtool(&text).unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\n{text}"));
    run(&["datapath", "unload"]);
    until(
        &|t| !t.contains("cilium_") && t.contains("dpdbg_serve_datapath_loaded 0\n"),
        "no datapath metrics once unloaded",
    );
}

#[test]
fn a_metrics_address_in_use_or_not_loopback_is_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let fs = Bpffs::new();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dpdbg.sock");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let serve = |extra: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(&fs.0)
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = serve(&["--metrics", &addr]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&addr) && err.contains("in use"), "names the address: {err}");
    assert!(!Path::new(&socket).exists(), "nothing left behind");
    let o = serve(&["--metrics", "0.0.0.0:9962"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--insecure"), "{err}");
    drop(taken);
}

/// The DaemonSet's pods are the ones deploy/prometheus-scrape.yaml keeps
/// (namespace, app label, annotations) and serve metrics on the annotated port.
#[test]
fn the_daemonset_serves_metrics_where_the_scrape_config_looks() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let docs = |file: &str| -> Vec<Value> {
        let o = Command::new("python3")
            .args(["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))"])
            .arg(repo.join(file))
            .output()
            .expect("python3 with yaml (scripts/setup.sh)");
        assert!(o.status.success(), "{file}: {}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let ds = docs("deploy/daemonset.yaml").into_iter().find(|d| d["kind"] == "DaemonSet").expect("a DaemonSet");
    let scrape = docs("deploy/prometheus-scrape.yaml").remove(0);
    let job = scrape["scrape_configs"].as_array().unwrap().iter().find(|j| j["job_name"] == "dpdbg").unwrap().clone();
    let sd = &job["kubernetes_sd_configs"][0];
    assert_eq!(sd["role"], "pod");
    assert!(sd["namespaces"]["names"].as_array().unwrap().contains(&ds["metadata"]["namespace"]));
    let template = &ds["spec"]["template"]["metadata"];
    let keep_app = job["relabel_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source_labels"][0] == "__meta_kubernetes_pod_label_app_kubernetes_io_name")
        .unwrap();
    assert_eq!(template["labels"]["app.kubernetes.io/name"], keep_app["regex"]);
    assert_eq!(template["annotations"]["prometheus.io/scrape"], "true");
    let port = template["annotations"]["prometheus.io/port"].as_str().expect("prometheus.io/port");
    let argv: Vec<&str> = ds["spec"]["template"]["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let metrics = argv[argv.iter().position(|a| *a == "--metrics").expect("serve --metrics") + 1];
    let addr: std::net::SocketAddr = metrics.parse().unwrap();
    assert_eq!(addr.port().to_string(), port, "the annotated port is the one served");
    assert!(addr.ip().is_loopback() || argv.contains(&"--insecure"), "off loopback, serve needs --insecure for it");
}
