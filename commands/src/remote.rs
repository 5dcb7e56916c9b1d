//! `--server`: a command run on another node's `dpdbg serve`.
//!
//! The server runs the same command with its own binary against its own
//! datapath (dpdbg.v1.Commands) and streams back what it prints; this side
//! copies the bytes and exits with the command's code. Which commands a
//! server runs, and which of them write, is decided here, from the clap tree.

use std::io::Write;
use std::path::Path;

use clap::{Parser, ValueEnum};
use dpdbg_api::events::RunRequest;
use dpdbg_api::events::commands_client::CommandsClient;
use dpdbg_api::events::run_output::Item;
use dpdbg_api::server::commands::Access;

use crate::args::{Cli, Command};
use crate::bpf::BpfCmd;
use crate::bpf::ct::CtCmd;
use crate::bpf::endpoint::EndpointCmd;
use crate::bpf::identity::IdentityCmd;
use crate::bpf::ipcache::IpcacheCmd;
use crate::bpf::policy::PolicyCmd;
use crate::datapath::DatapathCmd;
use crate::map::MapCmd;
use crate::output::{Exit, Format};
use crate::prog::ProgCmd;

/// Global flags that are about the client's side: a server runs commands
/// with its own bpffs, output format (from the request) and no server, TLS
/// or dial of its own. dpdbg's own client never sends them (`forwarded_args`).
const CLIENT_FLAGS: &[&str] =
    &["--server", "--bpffs", "--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name", "--insecure", "--output"];

/// The client-side flag `arg` is (before `--`), if any.
fn client_flag(arg: &str) -> Option<&'static str> {
    if arg == "-o" || (arg.starts_with("-o") && !arg.starts_with("--")) {
        return Some("-o");
    }
    CLIENT_FLAGS.iter().copied().find(|f| arg == *f || arg.strip_prefix(f).is_some_and(|rest| rest.starts_with('=')))
}

/// A map named by a path the server would open for the client: only pins
/// under the server's own bpffs are the server's to read.
fn outside_bpffs(map: &str, bpffs: &std::path::Path) -> bool {
    use std::path::{Component, Path};
    if !map.contains('/') {
        return false;
    }
    let p = Path::new(map);
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return true;
    }
    match (p.canonicalize(), bpffs.canonicalize()) {
        (Ok(real), Ok(root)) => !real.starts_with(root),
        // Not there: refused unless it would be under the bpffs.
        _ => !p.starts_with(bpffs),
    }
}

/// What `dpdbg ARGS…` does to a node whose bpffs is `bpffs`, for a server
/// deciding whether to run it: only what dpdbg's own client sends.
pub fn classify_on(args: &[String], bpffs: &std::path::Path) -> Access {
    for a in args.iter().take_while(|a| *a != "--") {
        if let Some(flag) = client_flag(a) {
            return Access::Refused(format!(
                "{flag} is a flag of the client's side: a server runs commands with its own bpffs, no server, TLS or output flags of theirs (the format travels in the request); send the command line without it, as dpdbg --server does"
            ));
        }
    }
    let access = classify(args);
    let argv = ["dpdbg".to_string(), "--bpffs".into(), "/".into()].into_iter().chain(args.iter().cloned());
    if let Ok(Cli { command: Command::Map(m), .. }) = Cli::try_parse_from(argv) {
        let map = match &m {
            MapCmd::List => None,
            MapCmd::Dump { map, .. }
            | MapCmd::Get { map, .. }
            | MapCmd::Update { map, .. }
            | MapCmd::Delete { map, .. }
            | MapCmd::Watch { map, .. } => Some(map.as_str()),
        };
        if let Some(map) = map
            && outside_bpffs(map, bpffs)
        {
            return Access::Refused(format!(
                "{}: a path the server would open for the client; name the map (ct4, id:N) or give its pin under the server's bpffs",
                crate::output::quote(map)
            ));
        }
    }
    access
}

/// What `dpdbg ARGS…` does to a node, for a server deciding whether to run it.
pub fn classify(args: &[String]) -> Access {
    let argv = ["dpdbg".to_string(), "--bpffs".into(), "/".into()].into_iter().chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        // The child prints clap's own message and exits 2 (or prints the
        // help): parsing fails before anything could be changed.
        Err(_) => return Access::Read,
    };
    let refused = |what: &str, why: &str| Access::Refused(format!("`dpdbg {what}` is not run through a server: {why}"));
    match &cli.command {
        Command::Datapath(c) => match c {
            DatapathCmd::Status => Access::Read,
            DatapathCmd::Config { changes } if changes.is_empty() => Access::Read,
            _ => Access::Write,
        },
        Command::Bpf(c) => match c {
            BpfCmd::Endpoint(EndpointCmd::List | EndpointCmd::Get { .. })
            | BpfCmd::Policy(PolicyCmd::Get { .. })
            | BpfCmd::Ct(CtCmd::List { .. })
            | BpfCmd::Metrics(_)
            | BpfCmd::Ipcache(IpcacheCmd::List | IpcacheCmd::Get { .. })
            | BpfCmd::Identity(IdentityCmd::List | IdentityCmd::Get { .. }) => Access::Read,
            _ => Access::Write,
        },
        Command::Map(c) => match c {
            MapCmd::List | MapCmd::Dump { .. } | MapCmd::Get { .. } | MapCmd::Watch { .. } => Access::Read,
            MapCmd::Update { .. } | MapCmd::Delete { .. } => Access::Write,
        },
        // Statistics are node-wide: every program's run time is counted
        // while they are on, a change to the node.
        Command::Prog(ProgCmd::List { stats: Some(_) }) => Access::Write,
        Command::Prog(_) | Command::Trace(_) | Command::Explain(_) | Command::Status(_) => Access::Read,
        Command::Debuginfo(d) => match d.node_file() {
            Some(f) => refused(
                "debuginfo --file FILE",
                &format!(
                    "it would write {} on the node; `dpdbg --server … debuginfo` writes the bundle here",
                    f.display()
                ),
            ),
            None => Access::Read,
        },
        Command::Monitor(m) => match (m.pcap_file(), m.capture_file()) {
            (Some((flag, f)), _) => refused(
                &format!("monitor {flag} FILE"),
                &format!("it would write {} on the node; use {flag} - and redirect it here", f.display()),
            ),
            (None, Some(("--write", f))) => refused(
                "monitor --write FILE",
                &format!("it would write {} on the node; run the monitor on the node itself", f.display()),
            ),
            (None, Some((_, f))) => refused(
                "monitor -r FILE",
                &format!("it would read {} on the node; run `dpdbg monitor -r` here, without --server", f.display()),
            ),
            (None, None) => Access::Read,
        },
        Command::Verify(v) => match v.node_file() {
            Some(f) => refused(
                "verify MATRIX",
                &format!(
                    "it would read {} on the node; `dpdbg --server … verify MATRIX` reads the file here and sends its rows",
                    f.display()
                ),
            ),
            None => Access::Read,
        },
        Command::Lab(_) => refused("lab", "the lab is made on the node itself"),
        Command::Serve(_) => refused("serve", "a server is started on the node itself"),
        Command::Tui(_) | Command::Observe(_) | Command::Health(_) => {
            refused("tui, observe or health", "they talk to the server themselves")
        }
    }
}

/// The command line to run remotely: this one without the flags that are
/// about this side (the server, TLS, the local bpffs) and without the
/// output format, which travels in the request.
pub fn forwarded_args(argv: &[String]) -> Vec<String> {
    const WITH_VALUE: &[&str] =
        &["--server", "--bpffs", "-o", "--output", "--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"];
    const ALONE: &[&str] = &["--insecure"];
    let mut out = Vec::new();
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(it.cloned());
            break;
        }
        if WITH_VALUE.contains(&a.as_str()) {
            it.next();
            continue;
        }
        if ALONE.contains(&a.as_str())
            || WITH_VALUE.iter().any(|f| f.starts_with("--") && a.starts_with(&format!("{f}=")))
            || (a.starts_with("-o") && a.len() > 2 && !a.starts_with("--"))
        {
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// Runs the command on `server` and copies its output here; an exit code
/// other than 0 comes back as `Exit`, which main turns into the code alone.
pub fn run(server: &str, output: Format, args: Vec<String>) -> anyhow::Result<()> {
    let output = output.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_else(|| "table".into());
    let output = match output.as_str() {
        "compact" | "dict" => "table".to_string(),
        "jsonpb" => "json".to_string(),
        o => o.to_string(),
    };
    let line = args.join(" ");
    if let Ok(dpdbg_api::client::ServerAddr::Unix(path)) = dpdbg_api::client::parse_server(server) {
        let req = dpdbg_api::run_socket::Request { args, output };
        match run_here(server, &dpdbg_api::run_socket::path_for(&path), &req, &line)? {
            Some(code) => return if code == 0 { Ok(()) } else { Err(Exit(code.clamp(1, 255) as u8).into()) },
            None => return run_grpc(server, req.output, req.args, &line),
        }
    }
    run_grpc(server, output, args, &line)
}

/// On the server's node: the command writes to this process's stdout and
/// stderr itself, through the run socket (`dpdbg_api::run_socket`); its
/// exit status, or None where the server has no run socket (one older than
/// it, or one that serves no commands), which Commands then answers.
fn run_here(server: &str, run: &Path, req: &dpdbg_api::run_socket::Request, line: &str) -> anyhow::Result<Option<i32>> {
    use dpdbg_api::run_socket::{Reply, read_reply, send_request};
    use std::os::fd::AsRawFd;
    let mut sock = match std::os::unix::net::UnixStream::connect(run) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(anyhow::anyhow!("{server}: connecting to its run socket {}: {e}", run.display())),
    };
    // Nothing of ours may sit in a buffer under what the command writes.
    std::io::stdout().flush()?;
    send_request(sock.as_raw_fd(), req, &[libc::STDOUT_FILENO, libc::STDERR_FILENO])
        .map_err(|e| anyhow::anyhow!("{server}: sending `dpdbg {line}` to its run socket {}: {e}", run.display()))?;
    match read_reply(&mut sock) {
        Ok(Some(Reply::Exit { exit_code })) => Ok(Some(exit_code)),
        Ok(Some(Reply::Status { code, message })) => {
            let s = dpdbg_api::tonic::Status::new(dpdbg_api::tonic::Code::from_i32(code), message);
            Err(anyhow::anyhow!("{server}: {}", dpdbg_api::client::status_text(&s)))
        }
        // The server died (its commands die with it) or dropped the connection.
        Ok(None) | Err(_) => anyhow::bail!(
            "the server at {server} went away in the middle of `dpdbg {line}` (the output above may be incomplete)"
        ),
    }
}

/// Through dpdbg.v1.Commands: the output streamed here and copied to stdout and stderr.
fn run_grpc(server: &str, output: String, args: Vec<String>, line: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let code = rt.block_on(async {
        let ch = dpdbg_api::client::connect(server).await?;
        let mut client = CommandsClient::new(ch);
        let refused =
            |s: dpdbg_api::tonic::Status| anyhow::anyhow!("{server}: {}", dpdbg_api::client::status_text(&s));
        let mut stream = client.run(RunRequest { args, output }).await.map_err(refused)?.into_inner();
        let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
        loop {
            let msg = stream.message().await.map_err(|s| {
                anyhow::anyhow!(
                    "the server at {server} went away in the middle of `dpdbg {line}`: {} (the output above may be incomplete)",
                    dpdbg_api::client::status_text(&s)
                )
            })?;
            let Some(m) = msg else {
                anyhow::bail!(
                    "the server at {server} ended `dpdbg {line}` without its exit status (the output above may be incomplete)"
                );
            };
            match m.item {
                Some(Item::Stdout(b)) => out.write_all(&b)?,
                Some(Item::Stderr(b)) => {
                    out.flush()?;
                    err.write_all(&b)?;
                }
                Some(Item::ExitCode(c)) => {
                    out.flush()?;
                    return Ok::<i32, anyhow::Error>(c);
                }
                None => {}
            }
        }
    })?;
    if code == 0 { Ok(()) } else { Err(Exit(code.clamp(1, 255) as u8).into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn reads_writes_and_refusals() {
        for read in [
            "datapath status",
            "datapath config",
            "bpf ct list --port 80",
            "bpf endpoint list",
            "bpf policy get",
            "bpf metrics list",
            "bpf ipcache get 10.0.0.1",
            "bpf identity list",
            "bpf identity get 1001",
            "map dump ct4",
            "map list",
            "monitor -t drop",
            "monitor --pcap -",
            "trace --from 1 --to 2 --dport 80",
            "bpf ct list --nonsense",
            "status --brief",
            "debuginfo --file -",
            "verify --matrix-text [{from:1,to:2,port:80,expect:allow}]",
        ] {
            assert_eq!(classify(&v(read)), Access::Read, "{read}");
        }
        for write in [
            "datapath config aggregation=none",
            "datapath load",
            "datapath unload",
            "datapath attach eth0",
            "bpf ct flush",
            "bpf ct gc",
            "bpf endpoint set 1 --enforce both",
            "bpf policy add --endpoint 1 --direction ingress --action allow",
            "bpf ipcache upsert 10.0.0.0/8 300",
            "bpf identity add 1001 --label app=web",
            "bpf identity delete 1001",
            "map update ct4 hex:00 hex:00",
            "map delete ct4 hex:00",
            "prog list --stats 1",
        ] {
            assert_eq!(classify(&v(write)), Access::Write, "{write}");
        }
        for refused in [
            "lab up",
            "serve",
            "tui",
            "observe",
            "health",
            "monitor --pcap /tmp/x.pcap",
            "monitor --write /tmp/x.dpdbg",
            "monitor -r /tmp/x.dpdbg",
            "debuginfo --file /tmp/x.tar.gz",
            "verify /tmp/matrix.yaml",
            "verify -",
        ] {
            assert!(matches!(classify(&v(refused)), Access::Refused(_)), "{refused}");
        }
    }

    #[test]
    fn local_flags_stay_here() {
        assert_eq!(
            forwarded_args(&v(
                "--server h:1 -o json bpf ct list --bpffs /x --port 80 -ojsonl --tls-ca=ca.pem --insecure"
            )),
            v("bpf ct list --port 80")
        );
        assert_eq!(forwarded_args(&v("map get m -- -o")), v("map get m -- -o"), "after -- everything is an argument");
    }
}
