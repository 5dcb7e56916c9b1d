//! `dpdbg tui --server`'s data: the node read through `dpdbg serve`'s typed
//! read service (dpdbg.v1.Snapshot) into the core's own types, the same
//! values the CLI prints and the dashboard beside the node reads, and no
//! command run on the node for it (dpdbg.v1.Commands, a child process each).

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{CliLab, free_port};
use dpdbg::datapath::Status;
use dpdbg::maps::ct::CtView;
use dpdbg::maps::{Endpoint, Metric, PolicyRule};
use dpdbg::progs::ProgSummary;
use dpdbg_tui::Source;
use serde::de::DeserializeOwned;

/// A CLI document, read into the core's type for it.
fn doc<T: DeserializeOwned>(lab: &CliLab, args: &[&str]) -> T {
    let mut a = vec!["-o", "json"];
    a.extend_from_slice(args);
    let o = lab.run(&a);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?} into the core's type: {e}"))
}

fn tuples(ct: &[CtView]) -> BTreeSet<String> {
    ct.iter()
        .map(|v| format!("{} {}:{} {}:{} {} {}", v.proto, v.src, v.sport, v.dst, v.dport, v.direction, v.state))
        .collect()
}

#[test]
fn the_remote_dashboard_reads_the_node_typed_and_runs_no_command() {
    let lab = CliLab::up();
    assert!(lab.run(&["lab", "traffic"]).status.success());
    let socket = lab.dir.path().join("dpdbg.sock");
    let log_path = lab.dir.path().join("serve.log");
    let tcp = format!("127.0.0.1:{}", free_port());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(&lab.fs.0)
        .args(["serve", "--socket"])
        .arg(&socket)
        .args(["--listen", &tcp])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let t = Instant::now();
    while !socket.exists() || std::net::TcpStream::connect(&tcp).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "dpdbg serve did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let serve = Kill(&mut serve);
    let server = socket.display().to_string();

    // A rule, so the policy table has one.
    let eps: Vec<Endpoint> = doc(&lab, &["bpf", "endpoint", "list"]);
    let ep = eps[0].endpoint_id.to_string();
    let add = ["bpf", "policy", "add", "--endpoint", &ep, "--identity", "any", "--port", "80", "--proto", "tcp"];
    let o = lab.run(&[&add[..], &["--direction", "ingress", "--action", "allow"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // What the CLI prints, each document read into the core's type.
    let rules: Vec<PolicyRule> = doc(&lab, &["bpf", "policy", "get"]);
    let ct: Vec<CtView> = doc(&lab, &["bpf", "ct", "list"]);
    let metrics: Vec<Metric> = doc(&lab, &["bpf", "metrics", "list"]);
    let status: Status = doc(&lab, &["datapath", "status"]);
    let progs: Vec<ProgSummary> = doc(&lab, &["prog", "list"]);
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert!(!ct.is_empty() && !metrics.is_empty() && status.loaded);

    // The dashboard's remote source, as `dpdbg tui --server` refreshes it.
    let mut remote = dpdbg_tui::Remote::connect(&server).unwrap();
    let first = remote.refresh(false).unwrap();
    let with_programs = remote.refresh(true).unwrap();
    assert_eq!(first.endpoints, eps);
    assert_eq!(first.rules, rules.iter().map(PolicyRule::entry).collect::<Vec<_>>());
    assert_eq!(tuples(&first.ct), tuples(&ct));
    let forwarded = |m: &[Metric]| m.iter().filter(|m| m.reason == 0).map(|m| m.packets).sum::<u64>();
    assert!(forwarded(&first.metrics) >= forwarded(&metrics) && forwarded(&metrics) > 0);
    let o = first.overview.as_ref().expect("the first refresh carries the overview");
    assert!(o.loaded);
    let named: Vec<String> = status.programs.iter().map(|p| format!("{} (id {})", p.name, p.id)).collect();
    assert_eq!(o.programs, named);
    assert_eq!(o.attachments.len(), status.interfaces.len());
    for a in &status.interfaces {
        assert!(o.attachments.iter().any(|s| s.starts_with(&a.interface)), "{a:?} in {:?}", o.attachments);
        assert!(first.ifnames.iter().any(|(i, n)| Some(*i) == a.ifindex && *n == a.interface), "{:?}", first.ifnames);
    }
    assert!(first.programs.is_none() && with_programs.overview.is_none(), "each only when asked");
    let listed = with_programs.programs.expect("the Programs view's refresh carries the programs");
    for p in &status.programs {
        let l = listed.iter().find(|l| l.id == p.id).unwrap_or_else(|| panic!("program {} listed", p.id));
        let cli = progs.iter().find(|c| c.id == p.id).unwrap();
        assert_eq!((l.prog_type, &l.name, &l.tag, &l.attached), (cli.prog_type, &cli.name, &cli.tag, &cli.attached));
    }

    // The same values the dashboard beside the node reads from the core.
    let mut local = dpdbg_tui::Local::new(lab.fs.0.clone(), server.clone());
    let here = local.refresh(false).unwrap();
    assert_eq!(here.overview, first.overview);
    assert_eq!((&here.endpoints, &here.ifnames, &here.rules), (&first.endpoints, &first.ifnames, &first.rules));
    assert_eq!(tuples(&here.ct), tuples(&first.ct));

    // Like Commands and Events, the snapshot needs mutual TLS on TCP.
    let e = dpdbg_tui::Remote::connect(&tcp).and_then(|mut r| r.refresh(false).map(|_| ())).unwrap_err();
    assert!(e.contains("dpdbg.v1.Snapshot") && e.contains("client certificate"), "{e}");

    // Counted: one command through --server, then the server's own count
    // at exit. The dashboard's refreshes made none.
    let o = lab.run(&["--server", &server, "bpf", "endpoint", "list"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The sources' event streams go first: the server's graceful stop waits
    // for its clients' streams, and these are read only at a refresh.
    drop((remote, local));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(serve.0.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    let exit = loop {
        if let Some(s) = serve.0.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "dpdbg serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let stopped = log.lines().find(|l| l.starts_with("dpdbg serve: stopped after")).unwrap_or_else(|| panic!("{log}"));
    assert!(stopped.ends_with(", 1 command run for clients"), "only the CLI's command ran: {stopped}");
}
