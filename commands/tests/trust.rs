//! The server as a hostile local user or API client would try it: what a
//! listener without client certificates serves, what `Commands/Run` takes,
//! the socket files, children of a killed server, readers that never read,
//! `until` on a quiet node, filter fields dpdbg does not implement. Each
//! test here failed before the fix it names (issue 25).

mod common;

use common::{Bpffs, dpdbg, free_port};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dpdbg_api::events::RunRequest;
use dpdbg_api::events::commands_client::CommandsClient;
use dpdbg_api::tonic;

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn show(o: &Output) -> String {
    format!("exit {:?}\nstdout: {}\nstderr: {}", o.status.code(), String::from_utf8_lossy(&o.stdout), err(o))
}

/// A datapath loaded on a private bpffs, and a directory for sockets.
struct Node {
    fs: Bpffs,
    dir: tempfile::TempDir,
    state: PathBuf,
}

impl Node {
    fn new() -> Node {
        let fs = Bpffs::new();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("lab.json");
        let o = dpdbg(&fs.0, &state, &["datapath", "load"]);
        assert!(o.status.success(), "load: {}", show(&o));
        Node { fs, dir, state }
    }

    fn run(&self, args: &[&str]) -> Output {
        dpdbg(&self.fs.0, &self.state, args)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("dpdbg.sock")
    }
}

/// `dpdbg serve` with its stderr kept (the start-up line says what it serves).
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(node: &Node, args: &[&str]) -> Serve {
        let log = node.dir.path().join(format!("serve-{}.log", free_port()));
        let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(&node.fs.0)
            .arg("serve")
            .arg("--socket")
            .arg(node.socket())
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut s = Serve { child, log };
        let tcp = args.iter().position(|a| *a == "--listen").and_then(|i| args.get(i + 1)).map(|a| a.to_string());
        let t = Instant::now();
        while !std::fs::read_to_string(&s.log).unwrap_or_default().contains("keeping the last")
            || tcp.as_ref().is_some_and(|a| std::net::TcpStream::connect(a).is_err())
        {
            if let Some(st) = s.child.try_wait().unwrap() {
                panic!("dpdbg serve exited {st}: {}", s.log());
            }
            assert!(t.elapsed() < Duration::from_secs(10), "dpdbg serve did not come up: {}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn log(&mut self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// What a raw dpdbg.v1.Commands client is told for `args`: the status, or
/// the output and exit code when the server ran it.
fn raw_run(server: &str, args: &[&str]) -> Result<(i32, String, String), tonic::Status> {
    runtime().block_on(async {
        let ch = dpdbg_api::client::connect(server).await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut c = CommandsClient::new(ch);
        let req = RunRequest { args: args.iter().map(|s| s.to_string()).collect(), output: "table".into() };
        let mut stream = c.run(req).await?.into_inner();
        let (mut out, mut er) = (Vec::new(), Vec::new());
        while let Some(m) = stream.message().await? {
            use dpdbg_api::events::run_output::Item;
            match m.item {
                Some(Item::Stdout(b)) => out.extend_from_slice(&b),
                Some(Item::Stderr(b)) => er.extend_from_slice(&b),
                Some(Item::ExitCode(c)) => {
                    return Ok((c, String::from_utf8_lossy(&out).into(), String::from_utf8_lossy(&er).into()));
                }
                None => {}
            }
        }
        Err(tonic::Status::unknown("no exit code"))
    })
}

#[test]
fn tcp_without_client_certificates_serves_only_what_hubble_serves() {
    let node = Node::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut serve = Serve::start(&node, &["--listen", &addr]);
    let log = serve.log();
    assert!(
        log.contains("without client certificates: observer.Observer") && log.contains("grpc.health.v1"),
        "the start-up line names what plain TCP serves: {log}"
    );
    // Hubble's Observer and health answer anyone, as Hubble's own do.
    let o = node.run(&["observe", "--server", &addr, "--last", "1"]);
    assert!(o.status.success(), "{}", show(&o));
    let o = node.run(&["health", "--server", &addr]);
    assert!(o.status.success(), "{}", show(&o));
    // dpdbg's commands and the raw records do not, whoever asks.
    for args in [&["map", "list"][..], &["prog", "list"], &["bpf", "ct", "list"], &["datapath", "status"]] {
        let mut a = vec!["--server", addr.as_str()];
        a.extend_from_slice(args);
        let o = node.run(&a);
        assert_eq!(o.status.code(), Some(1), "{args:?} through plain TCP: {}", show(&o));
        assert!(err(&o).contains("client certificate"), "{args:?}: {}", show(&o));
        assert!(o.stdout.is_empty(), "{args:?}: {}", show(&o));
    }
    let status = raw_run(&addr, &["map", "list"]).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_dpdbg")])
        .args(["--server", &addr, "map", "list"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0), "an unprivileged user listed the node's maps: {}", show(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("ct4"), "{}", show(&o));
    // The unix socket still serves every command to those its mode lets in.
    let sock = node.socket().display().to_string();
    let o = node.run(&["--server", &sock, "map", "list"]);
    assert!(o.status.success(), "{}", show(&o));
}

#[test]
fn run_takes_only_what_dpdbgs_own_client_sends() {
    let node = Node::new();
    let _serve = Serve::start(&node, &[]);
    let sock = node.socket().display().to_string();
    let outside = node.dir.path().join("secret");
    std::fs::write(&outside, "not for clients").unwrap();
    let outside = outside.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--server", "127.0.0.1:1", "bpf", "ct", "list"], "--server"),
        (vec!["bpf", "ct", "list", "--server=127.0.0.1:1"], "--server"),
        (vec!["datapath", "status", "--bpffs", "/tmp"], "--bpffs"),
        (vec!["--bpffs=/tmp", "datapath", "status"], "--bpffs"),
        (vec!["bpf", "ct", "list", "--tls-ca", &outside], "--tls-ca"),
        (vec!["bpf", "ct", "list", "--tls-cert", &outside, "--tls-key", &outside], "--tls-cert"),
        (vec!["bpf", "ct", "list", "--tls-key=/etc/shadow"], "--tls-key"),
        (vec!["bpf", "ct", "list", "--tls-server-name", "x"], "--tls-server-name"),
        (vec!["--insecure", "bpf", "ct", "list"], "--insecure"),
        (vec!["-o", "json", "bpf", "ct", "list"], "-o"),
        (vec!["bpf", "ct", "list", "-ojson"], "-o"),
        (vec!["bpf", "ct", "list", "--output=json"], "--output"),
        (vec!["map", "dump", &outside], "a path"),
        (vec!["map", "get", "/etc/passwd", "hex:00"], "a path"),
        (vec!["map", "dump", "../../etc/passwd"], "a path"),
    ];
    for (args, named) in cases {
        match raw_run(&sock, &args) {
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::InvalidArgument, "{args:?}: {s:?}");
                assert!(s.message().contains(named), "{args:?}: {:?} should name {named}", s.message());
            }
            Ok(r) => panic!("{args:?} ran on the node: {r:?}"),
        }
    }
    // What the client does send still runs; a map by its pin under the
    // server's own bpffs is the server's own.
    let (code, out, e) = raw_run(&sock, &["map", "list"]).unwrap();
    assert_eq!(code, 0, "{e}");
    assert!(out.contains("ct4"), "{out}");
    let pin = node.fs.0.join("dpdbg/maps/endpoints").display().to_string();
    let (code, _, e) = raw_run(&sock, &["map", "dump", &pin]).unwrap();
    assert_eq!(code, 0, "{e}");
    let (code, _, _) = raw_run(&sock, &["map", "get", "ct4", "--", "-o"]).unwrap();
    assert_ne!(code, 0, "after -- a value is an argument, and runs (and fails as a key)");
}

#[test]
fn node_wide_statistics_need_allow_write() {
    let node = Node::new();
    let serve = Serve::start(&node, &[]);
    let sock = node.socket().display().to_string();
    let o = node.run(&["--server", &sock, "prog", "list", "--stats", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(err(&o).contains("--allow-write"), "{}", show(&o));
    let o = node.run(&["--server", &sock, "prog", "list"]);
    assert!(o.status.success(), "{}", show(&o));
    drop(serve);
    let _serve = Serve::start(&node, &["--allow-write"]);
    let o = node.run(&["--server", &sock, "prog", "list", "--stats", "0.1"]);
    assert!(o.status.success(), "{}", show(&o));
}

#[test]
fn a_path_that_is_not_a_socket_is_refused_never_deleted() {
    let node = Node::new();
    for (name, monitor) in [("plain-file", false), ("ok", true)] {
        let socket = node.dir.path().join(format!("{name}.sock"));
        let victim = if monitor { node.dir.path().join(format!("{name}-monitor.sock")) } else { socket.clone() };
        std::fs::write(&victim, "precious").unwrap();
        let o = node.run(&["serve", "--socket", &socket.display().to_string()]);
        assert_eq!(o.status.code(), Some(1), "{}", show(&o));
        assert!(err(&o).contains("not a socket"), "{}", show(&o));
        assert!(err(&o).contains(&victim.display().to_string()), "{}", show(&o));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "{} was deleted", victim.display());
        if monitor {
            assert!(!socket.exists(), "the server's own socket is removed when it cannot start");
        }
    }
}

fn children(pid: u32) -> Vec<u32> {
    let o = Command::new("pgrep").args(["-P", &pid.to_string()]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for this purpose: it runs nothing.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

#[test]
fn commands_die_with_a_killed_server() {
    let node = Node::new();
    let mut serve = Serve::start(&node, &["--allow-write"]);
    let sock = node.socket().display().to_string();
    let mut clients: Vec<Child> = [&["map", "watch", "ct4"][..], &["prog", "list", "--stats", "600"]]
        .iter()
        .map(|a| {
            Command::new(env!("CARGO_BIN_EXE_dpdbg"))
                .arg("--server")
                .arg(&sock)
                .args(*a)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let t = Instant::now();
    let kids = loop {
        let k = children(serve.pid());
        if k.len() >= 2 {
            break k;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the server did not start both commands: {k:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    serve.child.kill().unwrap();
    let _ = serve.child.wait();
    let t = Instant::now();
    while kids.iter().any(|&k| alive(k)) {
        if t.elapsed() > Duration::from_secs(5) {
            for &k in &kids {
                // SAFETY: cleaning up what the test started.
                unsafe { libc::kill(k as i32, libc::SIGKILL) };
            }
            panic!("the server's commands {kids:?} outlived it");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for c in &mut clients {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The send buffer (`tb`) of the server's end of each monitor socket connection.
fn monitor_send_buffers(path: &Path) -> Vec<u64> {
    let o = Command::new("ss").args(["-xmn", "src", &path.display().to_string()]).output();
    let text = String::from_utf8_lossy(&o.unwrap().stdout).into_owned();
    text.split("tb").skip(1).filter_map(|r| r.split(',').next()?.parse().ok()).collect()
}

#[test]
fn monitor_socket_readers_and_their_buffers_are_bounded() {
    use std::os::unix::net::UnixStream;
    let node = Node::new();
    let _serve = Serve::start(&node, &[]);
    let path = node.dir.path().join("dpdbg-monitor.sock");
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..200 {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut hello = [0u8; 8];
        s.read_exact(&mut hello).unwrap();
        // A refused reader gets the hello and an end frame at once; a
        // served one gets nothing until records come.
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        if !rest.is_empty() {
            refused = Some((held.len(), String::from_utf8_lossy(&rest).into_owned()));
            break;
        }
        held.push(s);
    }
    let (n, why) = refused.expect("200 readers that never read were all taken");
    assert!((8..=64).contains(&n), "{n} readers taken before the cap");
    assert!(why.contains("too many") && why.contains("readers"), "the refusal says why: {why:?}");
    let bufs = monitor_send_buffers(&path);
    assert!(!bufs.is_empty(), "ss shows the server's connections");
    for b in bufs {
        assert!(b <= 2 << 20, "a monitor connection's send buffer is {b} bytes");
    }
}

#[test]
fn until_ends_a_follow_on_a_quiet_node() {
    let node = Node::new();
    let _serve = Serve::start(&node, &[]);
    let sock = node.socket().display().to_string();
    let past = humantime::format_rfc3339(std::time::SystemTime::now() - Duration::from_secs(60)).to_string();
    for until in ["+2s", past.as_str()] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .args(["observe", "--server", &sock, "-f", "--until", until])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        let st = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(20) {
                let _ = c.kill();
                panic!("observe -f --until {until} did not end on a quiet node");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut e = String::new();
        c.stderr.take().unwrap().read_to_string(&mut e).unwrap();
        assert!(st.success(), "--until {until}: {e}");
    }
}
#[test]
fn a_filter_field_dpdbg_does_not_implement_is_refused_not_ignored() {
    use dpdbg_api::flow::FlowFilter;
    use dpdbg_api::observer::GetFlowsRequest;
    use dpdbg_api::observer::observer_client::ObserverClient;
    let node = Node::new();
    let _serve = Serve::start(&node, &[]);
    let sock = node.socket().display().to_string();
    let status = runtime().block_on(async {
        let ch = dpdbg_api::client::connect(&sock).await.unwrap();
        let mut c = ObserverClient::new(ch);
        let filter = FlowFilter { source_fqdn: vec!["example.com".into()], ..Default::default() };
        let req = GetFlowsRequest { number: 10, whitelist: vec![filter], ..Default::default() };
        match c.get_flows(req).await {
            Err(s) => s,
            Ok(r) => {
                let mut s = r.into_inner();
                match s.message().await {
                    Err(st) => st,
                    Ok(m) => panic!("source_fqdn was ignored: {m:?}"),
                }
            }
        }
    });
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("source_fqdn"), "{status:?}");
}

#[test]
fn a_stop_is_not_held_by_a_client_that_keeps_a_stream_open() {
    use dpdbg_api::events::SubscribeRequest;
    use dpdbg_api::events::events_client::EventsClient;
    let node = Node::new();
    let mut serve = Serve::start(&node, &[]);
    let sock = node.socket().display().to_string();
    let rt = runtime();
    // An Events stream opened and never read, as a suspended dashboard holds one.
    let _held = rt.block_on(async {
        let ch = dpdbg_api::client::connect(&sock).await.unwrap();
        EventsClient::new(ch).subscribe(SubscribeRequest {}).await.unwrap().into_inner()
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(serve.pid() as i32, libc::SIGTERM) };
    let t = Instant::now();
    while serve.child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(20), "serve did not stop with a stream held open: {}", serve.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(serve.log().contains("stopping anyway"), "{}", serve.log());
}
