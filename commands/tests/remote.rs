//! `--server`: every read command gives through `dpdbg serve` (unix socket
//! and loopback TCP) what it gives locally on the same state, byte for byte
//! with the same exit code; writes need `serve --allow-write`; a server that
//! goes away mid-command is an error, not a hang.

mod common;

use common::{CliLab, Server, free_port};

use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests here each load a datapath, which `map list` and `prog list`
/// would see: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn same(a: &Output, b: &Output) -> bool {
    a.stdout == b.stdout && a.stderr == b.stderr && a.status.code() == b.status.code()
}

#[test]
fn read_commands_are_the_same_through_the_server() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = CliLab::up();
    let (fs, dir) = (&lab.fs, &lab.dir);
    let run = |args: &[&str]| lab.run(args);
    for args in [
        &["bpf", "endpoint", "set", "102", "--enforce", "ingress"][..],
        &[
            "bpf",
            "policy",
            "add",
            "--endpoint",
            "102",
            "--direction",
            "ingress",
            "--action",
            "allow",
            "--proto",
            "tcp",
            "--port",
            "8080",
        ],
        &["bpf", "ipcache", "upsert", "10.1.0.0/16", "300"],
        &["lab", "traffic"],
    ] {
        run(args);
    }
    let socket = dir.path().join("dpdbg.sock");
    let tcp = format!("127.0.0.1:{}", free_port());
    // dpdbg's commands on TCP need a client certificate (mutual TLS).
    let pki = common::pki::pki(dir.path());
    let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client.key"));
    let (server_cert, server_key) = (pki.path("server.pem"), pki.path("server.key"));
    let server = Server::start(
        &fs.0,
        &socket,
        &[
            "--listen",
            &tcp,
            "--socket-group",
            "1",
            "--tls-cert",
            &server_cert,
            "--tls-key",
            &server_key,
            "--tls-client-ca",
            &ca,
        ],
    );
    let unix = socket.display().to_string();
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&socket).unwrap();
        assert_eq!((m.mode() & 0o777, m.uid(), m.gid()), (0o660, 0, 1), "the socket is rw for root and its group");
    }

    let commands: &[&[&str]] = &[
        &["datapath", "status"],
        &["datapath", "config"],
        &["bpf", "endpoint", "list"],
        &["bpf", "endpoint", "get", "101"],
        &["bpf", "endpoint", "get", "999"],
        &["bpf", "endpoint", "get", "lab/ep1"],
        &["bpf", "endpoint", "get", "lab/ep9"],
        &["bpf", "policy", "get"],
        &["bpf", "policy", "get", "102"],
        &["bpf", "policy", "get", "lab/ep2"],
        &["bpf", "ct", "list"],
        &["bpf", "ct", "list", "--ipv4", "--port", "8080"],
        &["bpf", "ct", "list", "--port", "eighty"],
        &["bpf", "metrics", "list"],
        &["bpf", "ipcache", "list"],
        &["bpf", "ipcache", "get", "10.1.2.3"],
        &["bpf", "ipcache", "get", "10.1.2.3/8"],
        &["map", "list"],
        &["map", "dump", "endpoints"],
        &["map", "dump", "policy"],
        &["map", "dump", "nonesuch"],
        &["map", "get", "settings", "0"],
        &["prog", "list"],
        &["trace", "--from", "101", "--to", "102", "--dport", "8080"],
        &["trace", "--from", "101", "--to", "102", "--proto", "udp", "--dport", "53"],
        &["trace", "--from", "lab/ep1", "--to", "lab/ep2", "--dport", "8080"],
    ];
    // On the unix socket the client hands its stdout and stderr to the
    // server through the run socket; with that out of the way (an older
    // server), through dpdbg.v1.Commands. Both are checked.
    let run_sock = dpdbg_api::run_socket::path_for(&socket);
    let hidden = dir.path().join("hidden-run.sock");
    assert!(run_sock.exists(), "no run socket beside {}", socket.display());
    let mut checked = 0;
    for cmd in commands {
        for format in ["table", "json", "jsonl"] {
            let mut local_args = cmd.to_vec();
            local_args.extend(["-o", format]);
            for via in ["run socket", "commands", "tcp"] {
                let server = if via == "tcp" { &tcp } else { &unix };
                let mut remote_args = vec!["--server", server.as_str()];
                if server == &tcp {
                    remote_args.extend(["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key]);
                }
                remote_args.extend(&local_args);
                let run = |args: &[&str]| {
                    if via == "commands" && args[0] == "--server" {
                        std::fs::rename(&run_sock, &hidden).unwrap();
                        let o = run(args);
                        std::fs::rename(&hidden, &run_sock).unwrap();
                        o
                    } else {
                        run(args)
                    }
                };
                // Ages move with the clock, each entry's at its own moment:
                // the remote run must equal a local run just before or
                // just after it, in one of a few tries.
                let mut last = None;
                for _ in 0..5 {
                    let before = run(&local_args);
                    let remote = run(&remote_args);
                    let after = run(&local_args);
                    if same(&remote, &before) || same(&remote, &after) {
                        last = None;
                        break;
                    }
                    last = Some((before, remote));
                }
                if let Some((local, remote)) = last {
                    panic!(
                        "dpdbg {} through {server} ({via}):\n--- local\n{}\n--- remote\n{}",
                        local_args.join(" "),
                        show(&local),
                        show(&remote)
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, commands.len() * 3 * 3);

    // DPDBG_SERVER is --server.
    let o = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["bpf", "endpoint", "list", "-o", "json"])
        .env("DPDBG_SERVER", &unix)
        .env("DPDBG_BPFFS", "/nonexistent")
        .output()
        .unwrap();
    assert!(same(&o, &run(&["bpf", "endpoint", "list", "-o", "json"])), "{}", show(&o));
    server.stop();
}

#[test]
fn writes_need_allow_write_and_a_dead_server_is_an_error() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = CliLab::up();
    let (fs, dir) = (&lab.fs, &lab.dir);
    let run = |args: &[&str]| lab.run(args);
    let socket = dir.path().join("dpdbg.sock");
    let sock = socket.display().to_string();
    let add =
        ["--server", &sock, "bpf", "policy", "add", "--endpoint", "101", "--direction", "ingress", "--action", "deny"];
    let rules = || run(&["bpf", "policy", "get", "-o", "json"]).stdout;

    let server = Server::start(&fs.0, &socket, &[]);
    let before = rules();
    let o = run(&add);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("without --allow-write"), "{}", show(&o));
    let mut json = add.to_vec();
    json.extend(["-o", "json"]);
    let o = run(&json);
    let err: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(err["exit_code"], 1, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("PERMISSION_DENIED")
            || err["error"].as_str().unwrap().contains("--allow-write")
    );
    let o = run(&["--server", &sock, "monitor", "--pcap", "/tmp/x.pcap"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not run through a server"), "{}", show(&o));
    let o = run(&["--server", &sock, "lab", "up"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("run on the node itself"), "{}", show(&o));
    assert_eq!(rules(), before, "nothing written");
    server.stop();

    let server = Server::start(&fs.0, &socket, &["--allow-write"]);
    let o = run(&add);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Rule added.\n");
    assert_ne!(rules(), before, "written");
    // A write the datapath refuses keeps its message and exit code.
    let mut again = add.to_vec();
    again[10] = "allow";
    let local = run(&again[2..]);
    let remote = run(&again);
    assert!(same(&local, &remote), "--- local\n{}\n--- remote\n{}", show(&local), show(&remote));
    assert_eq!(local.status.code(), Some(1));

    // A server that dies under a streaming command: the client says so and exits.
    let mut mon = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["--server", &sock, "monitor"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let mut server = server;
    server.child.kill().unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = mon.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(15) {
            let _ = mon.kill();
            panic!("the client hung after its server died");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(mon.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("went away in the middle of `dpdbg monitor`"), "{err}");

    // No server at all: a clear error naming the address.
    let o = run(&add);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach dpdbg serve"), "{}", show(&o));
}

/// The server's children, by pid.
fn server_children(pid: u32) -> Vec<u32> {
    let o = Command::new("pgrep").args(["-P", &pid.to_string()]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn on_the_node_the_command_writes_to_the_clients_own_stdout() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let lab = CliLab::up();
    let socket = lab.dir.path().join("dpdbg.sock");
    let sock = socket.display().to_string();
    let server = Server::start(&lab.fs.0, &socket, &[]);
    let run_sock = dpdbg_api::run_socket::path_for(&socket);
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&run_sock).unwrap();
        assert_eq!(m.mode() & 0o777, 0o660, "the run socket has the gRPC socket's mode");
    }

    // A file as stdout: the command's own descriptor 1 is that file while it
    // runs (no pipe to the server), and the file gets what a local run prints.
    let out_path = lab.dir.path().join("monitor.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut client = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["--server", &sock, "monitor", "-j"])
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let child = loop {
        if let Some(&c) = server_children(server.child.id()).first() {
            break c;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the server started no command");
        std::thread::sleep(Duration::from_millis(50));
    };
    let fd1 = std::fs::read_link(format!("/proc/{child}/fd/1")).unwrap();
    assert_eq!(fd1, out_path, "the command's stdout is the client's file");
    let _ = lab.run(&["lab", "traffic"]);
    let t = Instant::now();
    while std::fs::metadata(&out_path).unwrap().len() == 0 {
        assert!(t.elapsed() < Duration::from_secs(10), "no events written to the client's file");
        std::thread::sleep(Duration::from_millis(100));
    }
    let first = std::fs::read_to_string(&out_path).unwrap();
    let ev: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert!(ev.get("type").is_some() || ev.get("event").is_some(), "a monitor event: {ev}");

    // A client killed (Ctrl-C, kill -9) takes its command with it.
    client.kill().unwrap();
    let _ = client.wait();
    let t = Instant::now();
    while std::path::Path::new(&format!("/proc/{child}")).exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "the command outlived its client");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Exit codes and stderr as local; a refusal as through Commands.
    for args in [&["bpf", "endpoint", "get", "999"][..], &["bpf", "ct", "list", "--port", "eighty"]] {
        let local = lab.run(args);
        let mut remote_args = vec!["--server", sock.as_str()];
        remote_args.extend(args);
        let remote = lab.run(&remote_args);
        assert!(same(&local, &remote), "--- local\n{}\n--- remote\n{}", show(&local), show(&remote));
        assert_ne!(local.status.code(), Some(0));
    }

    // A connection that sends no descriptors is answered and let go; the server goes on.
    {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&run_sock).unwrap();
        let mut req = 2u32.to_le_bytes().to_vec();
        req.extend_from_slice(b"{}");
        s.write_all(&req).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.contains("without the client's stdout and stderr"), "{reply}");
    }
    let o = lab.run(&["--server", &sock, "bpf", "endpoint", "list", "-o", "json"]);
    assert!(o.status.success(), "{}", show(&o));
    server.stop();
    assert!(!run_sock.exists(), "the run socket is removed with the server");
}
