//! `bpf ct list -o json` of a 1,000,000-entry conntrack table through
//! `dpdbg serve` (unix socket and loopback TCP) against the local command,
//! in the same run; prints the times and ratios and checks the bytes are the
//! same. On the unix socket the client uses the run socket (the command
//! writes to the client's stdout itself); the same socket through
//! dpdbg.v1.Commands is measured too, as a client finds it when the run
//! socket is out of its way (renamed for those rounds). Needs root.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dpdbg::datapath::{self, Settings};

mod common;
#[path = "../tests/common/pki.rs"]
mod pki;

const N: usize = 1_000_000;

/// Wall time of a command, its stdout read to the end (as a pipe to a
/// consumer would), and a fingerprint of those bytes.
fn measure(cmd: &mut Command) -> (Duration, usize, u64) {
    let start = Instant::now();
    let out = cmd.stderr(Stdio::null()).output().expect("spawn");
    let t = start.elapsed();
    assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
    (t, out.stdout.len(), fingerprint(&out.stdout))
}

/// FNV-1a of the output with the ages left out: runs seconds apart see the
/// same entries a few seconds older.
fn fingerprint(b: &[u8]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    let mut i = 0;
    while i < b.len() {
        h = (h ^ b[i] as u64).wrapping_mul(0x100000001b3);
        i += 1;
        for key in [&b"\"age_s\":"[..], &b"\"expires_in_s\":"[..]] {
            if b[..i].ends_with(key) {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'-') {
                    i += 1;
                }
            }
        }
    }
    h
}

fn main() {
    common::with_bpffs(run);
}

fn run(bpffs: &Path) {
    let settings = Settings { max_entries: vec![("ct4".into(), 1_300_000)], ..Settings::default() };
    datapath::load(bpffs, &settings).unwrap();
    common::fill_ct4(bpffs, N, 0, 2, 60);
    let exe = env!("CARGO_BIN_EXE_dpdbg");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("dpdbg.sock");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let tcp = format!("127.0.0.1:{port}");
    // dpdbg's commands on TCP need a client certificate (mutual TLS).
    let pki = pki::pki(dir.path());
    let (ca, cert, key) = (pki.path("ca.pem"), pki.path("client.pem"), pki.path("client.key"));
    // Garbage collection off: the table's entries are long expired.
    let mut server = Command::new(exe)
        .arg("--bpffs")
        .arg(bpffs)
        .args(["serve", "--ct-gc-interval", "0", "--listen", &tcp])
        .args(["--tls-cert", &pki.path("server.pem"), "--tls-key", &pki.path("server.key"), "--tls-client-ca", &ca])
        .arg("--socket")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "dpdbg serve did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let unix = socket.display().to_string();
    let args = ["bpf", "ct", "list", "-o", "json"];
    let local = || measure(Command::new(exe).arg("--bpffs").arg(bpffs).args(args));
    let remote = |server: &str| {
        let mut c = Command::new(exe);
        c.args(["--server", server]);
        if server == tcp {
            c.args(["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key]);
        }
        measure(c.args(args))
    };

    let run_sock = dpdbg_api::run_socket::path_for(&socket);
    let hidden = dir.path().join("hidden-run.sock");
    assert!(run_sock.exists(), "dpdbg serve made no run socket at {}", run_sock.display());
    let (mut l_best, mut u_best, mut g_best, mut t_best) = (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    let mut sizes = None;
    // Interleaved, best of 3 each.
    for _ in 0..3 {
        let (lt, ln, lh) = local();
        let (ut, _, uh) = remote(&unix);
        std::fs::rename(&run_sock, &hidden).unwrap();
        let (gt, _, gh) = remote(&unix);
        std::fs::rename(&hidden, &run_sock).unwrap();
        let (tt, _, th) = remote(&tcp);
        assert_eq!(uh, lh, "the unix-socket output differs from the local one");
        assert_eq!(gh, lh, "the unix-socket output through Commands differs from the local one");
        assert_eq!(th, lh, "the TCP output differs from the local one");
        sizes = Some(ln);
        l_best = l_best.min(lt);
        u_best = u_best.min(ut);
        g_best = g_best.min(gt);
        t_best = t_best.min(tt);
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();

    println!(
        "dpdbg bpf ct list -o json of a {N}-entry ct4 ({} MB of JSON), read to the end; best of 3, interleaved:",
        sizes.unwrap_or(0) / 1_000_000
    );
    println!("  local                        {:>7.2} s", l_best.as_secs_f64());
    println!(
        "  --server unix socket         {:>7.2} s  {:>5.2}x local (target <= 1.2x; the run socket)",
        u_best.as_secs_f64(),
        u_best.as_secs_f64() / l_best.as_secs_f64()
    );
    println!(
        "  --server unix, Commands      {:>7.2} s  {:>5.2}x local (the output through gRPC, as before the run socket)",
        g_best.as_secs_f64(),
        g_best.as_secs_f64() / l_best.as_secs_f64()
    );
    println!(
        "  --server 127.0.0.1 (mTLS)    {:>7.2} s  {:>5.2}x local",
        t_best.as_secs_f64(),
        t_best.as_secs_f64() / l_best.as_secs_f64()
    );
    println!("  output identical in all four (ages aside, which move between runs): yes");
}
