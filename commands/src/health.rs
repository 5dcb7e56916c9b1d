//! `dpdbg health`: asks `dpdbg serve`'s grpc.health.v1 service how it is,
//! as grpc_health_probe does, for exec probes and scripts: exit 0 when the
//! service is SERVING, 1 otherwise.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use dpdbg_api::tonic_health::pb::HealthCheckRequest;
use dpdbg_api::tonic_health::pb::health_check_response::ServingStatus;
use dpdbg_api::tonic_health::pb::health_client::HealthClient;

use crate::output::Printer;

#[derive(Debug, Args)]
pub struct HealthCmd {
    /// The server (the global --server, or where `dpdbg serve` listens by default).
    #[arg(skip)]
    pub(crate) server: String,
    /// The service to ask about: "" is the process (liveness), observer.Observer
    /// serves only while a datapath is loaded (readiness).
    #[arg(long, default_value = "", value_name = "NAME")]
    service: String,
}

impl HealthCmd {
    pub fn run(self, _bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("the async runtime")?;
        let status = rt.block_on(async {
            let ch = dpdbg_api::client::connect(&self.server).await?;
            let req = HealthCheckRequest { service: self.service.clone() };
            let r = HealthClient::new(ch)
                .check(req)
                .await
                .map_err(|s| anyhow::anyhow!("health check at {}: {}", self.server, s.message()))?;
            anyhow::Ok(r.into_inner().status)
        })?;
        let name = ServingStatus::try_from(status).map_or("UNKNOWN", |s| s.as_str_name());
        p.print(&serde_json::json!({"service": self.service, "status": name}), || name.to_string())?;
        if status != ServingStatus::Serving as i32 {
            anyhow::bail!(
                "{} is {name} at {}",
                if self.service.is_empty() { "the server" } else { &self.service },
                self.server
            );
        }
        Ok(())
    }
}
