//! Fixtures for the CLI tests: a private bpffs, and a guard that takes a
//! CLI-made lab down even when the test fails half-way.
#![allow(dead_code)]

pub mod pki;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Bpffs(pub PathBuf);

impl Bpffs {
    pub fn new() -> Bpffs {
        let p = tempfile::Builder::new().prefix("dpdbg-cli-bpffs-").tempdir().unwrap().keep();
        dpdbg::sys::mount_bpffs(&p).unwrap();
        Bpffs(p)
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = dpdbg::datapath::unload(&self.0);
        // Pins a test made by other means (bpftool) go too.
        fn clear(dir: &Path) {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        clear(&p);
                        let _ = std::fs::remove_dir(&p);
                    } else {
                        let _ = std::fs::remove_file(&p);
                    }
                }
            }
        }
        clear(&self.0);
        let _ = dpdbg::sys::unmount(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `dpdbg lab down` on drop, for labs made with `dpdbg lab up`: declare it
/// after the Bpffs so it runs first.
pub struct LabGuard {
    pub bpffs: PathBuf,
    pub state: PathBuf,
}

impl Drop for LabGuard {
    fn drop(&mut self) {
        if self.state.exists() {
            let _ = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
                .arg("--bpffs")
                .arg(&self.bpffs)
                .args(["lab", "down"])
                .env("DPDBG_LAB_STATE", &self.state)
                .output();
        }
    }
}

/// Runs the dpdbg binary on `bpffs`, with its own lab state file.
pub fn dpdbg(bpffs: &Path, state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(bpffs)
        .args(args)
        .env("DPDBG_LAB_STATE", state)
        .output()
        .unwrap()
}

/// `dpdbg serve` for a test: started on `socket` with `args`, up once its
/// socket exists (and, with --listen, its TCP port answers); SIGTERM on drop.
pub struct Server {
    pub child: std::process::Child,
    socket: PathBuf,
}

impl Server {
    pub fn start(bpffs: &Path, socket: &Path, args: &[&str]) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
            .arg("--bpffs")
            .arg(bpffs)
            .arg("serve")
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let tcp = args.iter().position(|a| *a == "--listen").and_then(|i| args.get(i + 1)).map(|a| a.to_string());
        let t = std::time::Instant::now();
        while !socket.exists() || tcp.as_ref().is_some_and(|a| std::net::TcpStream::connect(a).is_err()) {
            assert!(t.elapsed() < std::time::Duration::from_secs(10), "dpdbg serve did not come up");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Server { child, socket: socket.to_path_buf() }
    }

    /// SIGTERM, and wait for it to go.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A TCP port on loopback that nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A lab made with `dpdbg lab up` on a private bpffs, with its own state
/// file; down, unmounted and removed on drop (fields drop in this order).
pub struct CliLab {
    _guard: LabGuard,
    pub fs: Bpffs,
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
}

impl CliLab {
    pub fn up() -> CliLab {
        let fs = Bpffs::new();
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("lab.json");
        let guard = LabGuard { bpffs: fs.0.clone(), state: state.clone() };
        let o = dpdbg(&fs.0, &state, &["lab", "up"]);
        assert!(o.status.success(), "lab up: {}", String::from_utf8_lossy(&o.stderr));
        CliLab { _guard: guard, fs, dir, state }
    }

    /// The dpdbg binary on this lab's bpffs and state.
    pub fn run(&self, args: &[&str]) -> Output {
        dpdbg(&self.fs.0, &self.state, args)
    }
}

/// The Python of the grpcio venv (scripts/setup.sh makes it; DPDBG_PYTHON
/// chooses another).
pub fn python() -> PathBuf {
    let p = std::env::var_os("DPDBG_PYTHON").map_or_else(|| PathBuf::from("/opt/dpdbg-venv/bin/python"), PathBuf::from);
    assert!(p.exists(), "{} is missing: run scripts/setup.sh (it makes the grpcio venv)", p.display());
    p
}

/// The Python Observer client (tests/python/observer_client.py, stubs
/// made by grpcio-tools from api/proto) on `socket`, `options` first.
pub fn python_client(options: &[&str], socket: &Path, args: &[&str]) -> Command {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut c = Command::new(python());
    c.arg(repo.join("tests/python/observer_client.py"))
        .args(options)
        .arg(repo.join("api/proto"))
        .arg(format!("unix:{}", socket.display()))
        .args(args);
    c
}

/// A command's exit, stdout and stderr, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The stdout of a command that must succeed.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The JSON document a command that must succeed prints.
pub fn json(o: Output) -> serde_json::Value {
    let s = ok(o);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// The JSON lines a command that must succeed prints.
pub fn jsonl(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", show(o));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
