//! `dpdbg.v1.Commands`: dpdbg's commands run on the node for `--server`.
//!
//! The server runs its own binary with the request's arguments, against its
//! own bpffs, and streams what the child prints. The output is therefore the
//! local command's, byte for byte, whatever the format, and errors keep
//! their messages and exit codes. Which commands may run, and whether a
//! command writes, is decided by the caller's `classify` (the CLI's clap
//! tree lives in the binary, not here).

use std::path::PathBuf;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::events::commands_server::Commands;
use crate::events::run_output::Item;
use crate::events::{RunOutput, RunRequest};

/// What a command line does to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads only: always served.
    Read,
    /// Changes the datapath or its maps: served with --allow-write.
    Write,
    /// Not for a server (an interactive or node-local command), and why.
    Refused(String),
}

/// Decides the access of a command line (the arguments after `dpdbg`).
pub type Classify = Arc<dyn Fn(&[String]) -> Access + Send + Sync>;

/// How the server runs commands.
#[derive(Clone)]
pub struct Runner {
    /// The dpdbg binary to run (the server's own).
    pub exe: PathBuf,
    pub bpffs: PathBuf,
    pub allow_write: bool,
    pub classify: Classify,
    /// The server's own event socket, where a child `monitor` finds the ring.
    pub events_socket: PathBuf,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("exe", &self.exe)
            .field("bpffs", &self.bpffs)
            .field("allow_write", &self.allow_write)
            .finish_non_exhaustive()
    }
}

/// At most this many commands run at once; more are refused, not queued.
const MAX_RUNNING: usize = 32;
/// Bytes of output per message, at most.
const CHUNK: usize = 256 << 10;
/// The pipe from the command: larger than Linux's 64 KiB default, so a
/// command printing fast is not stopped every 64 KiB to wait for the server.
const PIPE_SIZE: i32 = 1 << 20;

#[derive(Clone)]
pub struct CommandsService {
    runner: Runner,
    running: Arc<Semaphore>,
    runs: Arc<AtomicU64>,
}

impl CommandsService {
    pub fn new(runner: Runner) -> Self {
        CommandsService { runner, running: Arc::new(Semaphore::new(MAX_RUNNING)), runs: Arc::default() }
    }

    /// How many commands this service has started (each a child process).
    pub fn runs(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.runs)
    }
}

impl CommandsService {
    /// Whether `r` may run here, and a place among the running commands.
    fn admit(&self, r: &RunRequest) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        if !matches!(r.output.as_str(), "table" | "json" | "jsonl") {
            return Err(Status::invalid_argument(format!("output {:?}: use table, json or jsonl", r.output)));
        }
        let line = r.args.join(" ");
        match (self.runner.classify)(&r.args) {
            Access::Read => {}
            Access::Write if self.runner.allow_write => {}
            Access::Write => {
                return Err(Status::permission_denied(format!(
                    "`dpdbg {line}` changes the datapath, and this server was started without --allow-write (start `dpdbg serve --allow-write` to allow writes)"
                )));
            }
            Access::Refused(why) => return Err(Status::invalid_argument(why)),
        }
        Arc::clone(&self.running).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!("{MAX_RUNNING} commands are running on this server: try again"))
        })
    }

    /// Starts the command `r` asks for, its output going to `stdout` and `stderr`.
    fn spawn(&self, r: &RunRequest, stdout: Stdio, stderr: Stdio) -> Result<tokio::process::Child, Status> {
        let mut cmd = tokio::process::Command::new(&self.runner.exe);
        cmd.arg("--bpffs")
            .arg(&self.runner.bpffs)
            .arg("-o")
            .arg(&r.output)
            .args(&r.args)
            // The child runs here: it must not forward to a server itself.
            .env_remove("DPDBG_SERVER")
            .env_remove("DPDBG_BPFFS")
            .env("DPDBG_EVENTS_SOCKET", &self.runner.events_socket)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // A client that goes away takes its command with it.
            .kill_on_drop(true);
        // A server that dies (kill -9, OOM) takes its commands with it too:
        // kill_on_drop runs only when the server lives to drop the child, and
        // an orphaned `map watch` or `prog list --stats` would run on (with
        // node-wide statistics on) under init. The signal comes when the
        // thread that forked exits: a runtime worker, which lives as long as
        // the server.
        let server = std::process::id();
        // SAFETY: prctl and getppid are async-signal-safe and touch no memory
        // of the parent's; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The server died between fork and prctl: no signal will come.
                if libc::getppid() as u32 != server {
                    return Err(std::io::Error::other("dpdbg serve went away"));
                }
                Ok(())
            });
        }
        let child =
            cmd.spawn().map_err(|e| Status::internal(format!("starting {}: {e}", self.runner.exe.display())))?;
        self.runs.fetch_add(1, Ordering::Relaxed);
        Ok(child)
    }

    /// One connection to the run socket (`crate::run_socket`): the request
    /// and the client's stdout and stderr, the command run onto them, its
    /// exit status back. The command is killed when the client goes away.
    pub(super) async fn serve_run_socket(self, s: tokio::net::UnixStream) {
        use tokio::io::AsyncWriteExt;
        let Ok(std_sock) = s.into_std() else { return };
        // The request is one small message: read it blocking, off the runtime.
        let got = tokio::task::spawn_blocking(move || {
            let mut std_sock = std_sock;
            let _ = std_sock.set_nonblocking(false);
            let _ = std_sock.set_read_timeout(Some(std::time::Duration::from_secs(10)));
            let r = crate::run_socket::recv_request(&mut std_sock);
            (std_sock, r)
        })
        .await;
        let Ok((std_sock, got)) = got else { return };
        let _ = std_sock.set_read_timeout(None);
        let _ = std_sock.set_nonblocking(true);
        let Ok(mut s) = tokio::net::UnixStream::from_std(std_sock) else { return };
        let reply = |r: crate::run_socket::Reply| crate::run_socket::reply_line(&r);
        let status = |st: Status| {
            reply(crate::run_socket::Reply::Status { code: st.code() as i32, message: st.message().to_string() })
        };
        let (req, out, err) = match got {
            Ok(x) => x,
            Err(e) => {
                let _ = s.write_all(&status(Status::invalid_argument(e.to_string()))).await;
                return;
            }
        };
        let r = RunRequest { args: req.args, output: req.output };
        let started =
            self.admit(&r).and_then(|permit| Ok((permit, self.spawn(&r, Stdio::from(out), Stdio::from(err))?)));
        let (_permit, mut child) = match started {
            Ok(x) => x,
            Err(st) => {
                let _ = s.write_all(&status(st)).await;
                return;
            }
        };
        let mut gone = [0u8; 64];
        let code = loop {
            tokio::select! {
                w = child.wait() => break match w {
                    Ok(st) => exit_code(st),
                    Err(e) => {
                        let _ = s.write_all(&status(Status::internal(format!("waiting for the command: {e}")))).await;
                        return;
                    }
                },
                // The client sends nothing after its request: an end of its
                // side is a client gone (Ctrl-C), whose command goes too.
                r = tokio::io::AsyncReadExt::read(&mut s, &mut gone) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                },
            }
        };
        let _ = s.write_all(&reply(crate::run_socket::Reply::Exit { exit_code: code })).await;
    }
}

/// A command's exit status as a shell gives it: the code, or 128 + the signal.
fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

fn item(i: Item) -> Result<RunOutput, Status> {
    Ok(RunOutput { item: Some(i) })
}

#[tonic::async_trait]
impl Commands for CommandsService {
    type RunStream = Pin<Box<dyn Stream<Item = Result<RunOutput, Status>> + Send>>;

    async fn run(&self, req: Request<RunRequest>) -> Result<Response<Self::RunStream>, Status> {
        let r = req.into_inner();
        let permit = self.admit(&r)?;
        let mut child = self.spawn(&r, Stdio::piped(), Stdio::piped())?;
        let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Status::internal("the command's output pipes are missing"));
        };
        {
            use std::os::fd::AsRawFd;
            // SAFETY: F_SETPIPE_SZ on a pipe fd we own; failure leaves the default size.
            unsafe { libc::fcntl(out.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        }
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            let _permit = permit;
            // Read straight into the buffer a message then owns: no copy per chunk.
            let mut ob = prost::bytes::BytesMut::with_capacity(CHUNK);
            let mut eb = vec![0u8; 8 << 10];
            let (mut out_open, mut err_open) = (true, true);
            while out_open || err_open {
                let msg = tokio::select! {
                    n = out.read_buf(&mut ob), if out_open => match n {
                        Ok(n) if n > 0 => {
                            let chunk = ob.split().freeze();
                            ob.reserve(CHUNK);
                            item(Item::Stdout(chunk))
                        }
                        _ => { out_open = false; continue; }
                    },
                    n = err.read(&mut eb), if err_open => match n {
                        Ok(n) if n > 0 => item(Item::Stderr(eb[..n].to_vec().into())),
                        _ => { err_open = false; continue; }
                    },
                    // Dropping the child kills it.
                    _ = tx.closed() => return,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
            let code = match child.wait().await {
                Ok(s) => exit_code(s),
                Err(e) => {
                    let _ = tx.send(Err(Status::internal(format!("waiting for the command: {e}")))).await;
                    return;
                }
            };
            let _ = tx.send(item(Item::ExitCode(code))).await;
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}
