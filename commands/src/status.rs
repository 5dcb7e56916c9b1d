//! `dpdbg status`: one verdict on the node (ok, degraded, failed) with its
//! reasons, and an exit code a script or a CI job can gate on.
//!
//! Exit codes: 0 ok, 3 degraded, 4 failed (1 stays "could not tell", a
//! runtime error such as missing privileges; 2 a usage error). Unlike
//! `cilium-dbg status --brief`, which exits 1 for anything not ok, the two
//! states are told apart, and neither is mistaken for dpdbg failing to run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dpdbg::verdict::{self, Assessment, Check, Severity};
use dpdbg_api::tonic_health::pb::HealthCheckRequest;
use dpdbg_api::tonic_health::pb::health_check_response::ServingStatus;
use dpdbg_api::tonic_health::pb::health_client::HealthClient;

use crate::output::{Exit, Printer, table};

/// The exit code of a degraded node.
pub const EXIT_DEGRADED: u8 = 3;
/// The exit code of a failed node.
pub const EXIT_FAILED: u8 = 4;

/// How long `dpdbg serve` has to answer its health check.
const SERVE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Args)]
pub struct StatusCmd {
    /// One line: the verdict and its reasons.
    #[arg(long)]
    brief: bool,
    /// Where `dpdbg serve` listens on this node (its default socket, or DPDBG_EVENTS_SOCKET).
    #[arg(skip)]
    pub(crate) server: String,
}

/// Where the counters of the last look live: DPDBG_STATUS_STATE, else /run/dpdbg/status.json.
pub fn state_path() -> PathBuf {
    std::env::var_os("DPDBG_STATUS_STATE").map_or_else(|| PathBuf::from(verdict::STATE_FILE), PathBuf::from)
}

/// The exit code for a verdict.
pub fn exit_code(v: Severity) -> u8 {
    match v {
        Severity::Ok => 0,
        Severity::Degraded => EXIT_DEGRADED,
        Severity::Failed => EXIT_FAILED,
    }
}

/// Whether `dpdbg serve` answers on `socket`, when its socket is there: a
/// socket left behind by a server that died is a server expected and gone.
pub fn serve_check(socket: &str, datapath_loaded: bool) -> Option<Check> {
    let path = dpdbg_api::client::unix_path(socket)?;
    if !path.exists() {
        return None;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    let asked = rt.block_on(async {
        tokio::time::timeout(SERVE_TIMEOUT, async {
            let ch = dpdbg_api::client::connect(socket).await.map_err(|e| e.to_string())?;
            let mut c = HealthClient::new(ch);
            let mut status = Vec::new();
            for service in ["", "observer.Observer"] {
                let req = HealthCheckRequest { service: service.to_string() };
                let r = c.check(req).await.map_err(|s| s.message().to_string())?;
                status.push(r.into_inner().status);
            }
            let (live, ready) = (status[0], status[1]);
            Ok::<(i32, i32), String>((live, ready))
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", SERVE_TIMEOUT.as_secs())))
    });
    let serving = ServingStatus::Serving as i32;
    Some(match asked {
        Ok((live, _)) if live != serving => {
            Check::new("serve", Severity::Degraded, format!("dpdbg serve at {} says it is not serving", path.display()))
        }
        Ok((_, ready)) if ready != serving && datapath_loaded => Check::new(
            "serve",
            Severity::Degraded,
            format!("dpdbg serve at {} does not serve flows although a datapath is loaded", path.display()),
        ),
        Ok(_) => Check::new("serve", Severity::Ok, format!("dpdbg serve answers at {}", path.display())),
        Err(why) => Check::new(
            "serve",
            Severity::Degraded,
            format!(
                "dpdbg serve's socket {} is there but nobody answers ({why}): start `dpdbg serve` again, or remove the socket if no server should run",
                path.display()
            ),
        ),
    })
}

impl StatusCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let opts = verdict::Options { lab_state: Some(crate::lab::state_path()), state_file: state_path() };
        let mut a = verdict::assess(bpffs, &opts).context("status")?;
        let loaded = a.checks.iter().any(|c| c.check == "datapath" && c.severity == Severity::Ok);
        if let Some(c) = serve_check(&self.server, loaded) {
            a.push(c);
        }
        let code = exit_code(a.verdict);
        if self.brief {
            let brief = serde_json::json!({ "verdict": a.verdict, "reasons": a.reasons, "exit_code": code });
            p.print(&brief, || brief_line(&a))?;
        } else {
            p.print(&a, || render(&a))?;
        }
        if code == 0 { Ok(()) } else { Err(Exit(code).into()) }
    }
}

/// `ok`, or `degraded: reason; reason`.
fn brief_line(a: &Assessment) -> String {
    if a.reasons.is_empty() {
        a.verdict.as_str().to_string()
    } else {
        format!("{}: {}", a.verdict.as_str(), a.reasons.join("; "))
    }
}

fn render(a: &Assessment) -> String {
    let mut t = table(&["CHECK", "STATE", "DETAIL"]);
    for c in &a.checks {
        t.add_row(vec![c.check.to_string(), c.severity.as_str().to_string(), c.message.clone()]);
    }
    format!("Verdict: {}\nPin dir: {}\n\n{t}", a.verdict.as_str(), a.pin_dir.display())
}
