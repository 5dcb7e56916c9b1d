//! The `dpdbg` command line: the clap tree, one module per command group,
//! rendering as tables or JSON. All kernel work goes through the core.

pub mod args;
pub mod bpf;
pub mod datapath;
pub mod debuginfo;
pub mod explain;
pub mod generated;
pub mod health;
pub mod lab;
pub mod map;
pub mod monitor;
pub mod names;
pub mod observe;
mod observe_file;
mod observe_pcapng;
pub mod observe_print;
pub mod output;
pub mod pcapng;
pub mod prog;
#[cfg(test)]
mod props;
pub mod remote;
pub mod serve;
pub mod status;
pub mod stop;
pub mod trace;
pub mod tui;
pub mod verify;

pub use args::{Cli, Command, TlsArgs};
pub use output::Printer;

/// A command that talks to a server keeps SIGPIPE from killing it: hyper
/// writes to its socket with writev, which raises SIGPIPE when the server has
/// hung up (a refused TLS handshake), and the process must live to say why.
/// A closed stdout (`| head`) then comes back as a BrokenPipe error, which
/// main turns into the exit status SIGPIPE would have given.
pub fn keep_sigpipe_from_killing() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// An interface name as the kernel takes it (dev_valid_name), checked while
/// parsing so that a name no interface can have is a usage error naming the
/// rule, like any other malformed value, before any path is built from it.
pub(crate) fn ifname(s: &str) -> Result<String, String> {
    dpdbg::sys::check_ifname(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    // A --server that names no server is the caller's mistake (exit 2), said
    // before anything is dialled; an address nobody answers on is found by
    // dialling it (exit 1). lab and serve refuse --server itself below.
    if let Some(server) = &cli.server
        && !matches!(cli.command, Command::Lab(_) | Command::Serve(_))
    {
        dpdbg_api::client::parse_server(server)?;
    }
    if cli.output == output::Format::Junit && !matches!(cli.command, Command::Verify(_)) {
        usage!("-o junit is `dpdbg verify`'s format (JUnit XML for CI systems): use -o table, json or jsonl here");
    }
    let printer = Printer::new(cli.output);
    if cli.server.is_some() || matches!(cli.command, Command::Observe(_) | Command::Health(_) | Command::Tui(_)) {
        keep_sigpipe_from_killing();
    }
    if !matches!(cli.command, Command::Serve(_)) {
        dpdbg_api::client::configure(cli.tls.client()?);
    }
    if let Some(server) = &cli.server
        && matches!(
            cli.command,
            Command::Datapath(_)
                | Command::Bpf(_)
                | Command::Map(_)
                | Command::Prog(_)
                | Command::Monitor(_)
                | Command::Trace(_)
                | Command::Status(_)
        )
    {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        return remote::run(server, cli.output, remote::forwarded_args(&argv));
    }
    if let Some(server) = &cli.server
        && let Command::Verify(c) = cli.command
    {
        // The matrix is read here; the node traces its rows.
        return c.run_remote(server, cli.output);
    }
    if let (Some(server), Command::Explain(c)) = (&cli.server, &cli.command) {
        // stdin is read here: the node gets the event as its argument.
        let line = c.input()?;
        return remote::run(server, cli.output, vec!["explain".into(), line]);
    }
    if let (Some(server), Command::Debuginfo(c)) = (&cli.server, &cli.command) {
        // The node collects; the bundle is written here (its --file is ours).
        let c = debuginfo::DebuginfoCmd::clone_for_remote(c);
        return c.run_remote(server, &printer);
    }
    if cli.server.is_some() && matches!(cli.command, Command::Lab(_) | Command::Serve(_)) {
        usage!("--server: `dpdbg lab` and `dpdbg serve` run on the node itself (drop --server, or unset DPDBG_SERVER)");
    }
    // Where `dpdbg serve` listens: --server, else its default socket (a
    // command a server runs is told the server's own, to find the ring).
    let server = cli
        .server
        .clone()
        .unwrap_or_else(|| std::env::var("DPDBG_EVENTS_SOCKET").unwrap_or_else(|_| serve::DEFAULT_SOCKET.to_string()));
    match cli.command {
        Command::Datapath(c) => c.run(&cli.bpffs, &printer),
        Command::Lab(c) => c.run(&cli.bpffs, &printer),
        Command::Monitor(mut c) => {
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Bpf(c) => c.run(&cli.bpffs, &printer),
        Command::Map(c) => c.run(&cli.bpffs, &printer),
        Command::Prog(c) => c.run(&cli.bpffs, &printer),
        Command::Serve(c) => c.run(&cli.bpffs, &cli.tls),
        Command::Tui(mut c) => {
            c.remote = cli.server.is_some();
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Health(mut c) => {
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Trace(c) => c.run(&cli.bpffs, &printer),
        Command::Explain(c) => c.run(&cli.bpffs, &printer),
        Command::Verify(c) => c.run(&cli.bpffs, cli.output),
        Command::Status(mut c) => {
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Debuginfo(mut c) => {
            c.server = server;
            c.run(&cli.bpffs, &printer)
        }
        Command::Observe(mut c) => {
            c.server = server;
            // Hubble prints compact unless told otherwise; our global default is "table".
            let explicit = std::env::args().any(|a| a == "-o" || a.starts_with("-o") || a.starts_with("--output"));
            c.run(&cli.bpffs, observe::ObserveFormat::from_global(cli.output, explicit))
        }
    }
}
