use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

/// Every flow `serve` and `monitor` handle allocates a few short-lived
/// buffers; glibc's allocator was a fifth of the server's time per flow.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`dpdbg … | head`) as other Unix tools do.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match dpdbg_cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_failed(e),
    };
    let json = dpdbg_cli::Printer::new(cli.output).is_json();
    match dpdbg_cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // stdout closed under us (`| head`) where SIGPIPE was kept from
        // killing the process: the status it would have died with.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::from(128 + libc::SIGPIPE as u8)
        }
        Err(e) if e.downcast_ref::<dpdbg_cli::output::Exit>().is_some() => {
            ExitCode::from(e.downcast_ref::<dpdbg_cli::output::Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            let message = dpdbg_cli::output::error_message(&e);
            let code = dpdbg_cli::output::exit_code(&e);
            if json {
                // Scripts asked for JSON: the error is one JSON object too.
                eprintln!("{}", serde_json::json!({ "error": message, "exit_code": code }));
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::from(code)
        }
    }
}

/// clap refused the command line. Help and version are not errors and print
/// as clap prints them; a usage error is clap's text, or under `-o json`
/// one JSON object like every other error (exit 2 either way).
fn parse_failed(e: clap::Error) -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) || !dpdbg_cli::output::json_asked(&argv) {
        e.exit();
    }
    let code = e.exit_code().clamp(0, 255) as u8;
    eprintln!("{}", serde_json::json!({ "error": dpdbg_cli::output::clap_message(&e), "exit_code": code }));
    ExitCode::from(code)
}
