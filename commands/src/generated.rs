//! Shell completions and man pages, generated from the clap tree. The files
//! under completions/ and man/ are committed; commands/tests/generated.rs
//! fails when they are stale (DPDBG_UPDATE_GENERATED=1 rewrites them).

use clap::CommandFactory;
use clap_complete::Shell;

use crate::args::Cli;

/// (relative path, contents) of every generated file.
pub fn generated_files() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (shell, name) in [(Shell::Bash, "dpdbg.bash"), (Shell::Zsh, "_dpdbg"), (Shell::Fish, "dpdbg.fish")] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "dpdbg", &mut buf);
        out.push((format!("completions/{name}"), buf));
    }
    let cmd = Cli::command();
    man_pages(&cmd, "dpdbg", &mut out);
    out
}

fn man_pages(cmd: &clap::Command, name: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let cmd = cmd.clone().name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf).expect("rendering to a Vec cannot fail");
    out.push((format!("man/{name}.1"), buf));
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), out);
    }
}
