//! `grpc.health.v1.Health` for probes: `""` (the process) serves while it
//! runs, for liveness; the Observer's names serve only while a datapath is
//! loaded, for readiness.

use std::sync::Arc;

use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};

use super::store::Shared;

/// The health service name that is SERVING only while a datapath is loaded.
pub const READY_SERVICE: &str = "observer.Observer";

/// Names of the Observer that clients ask for readiness: ours, and the one
/// Hubble's clients (`hubble status`) ask for.
const OBSERVER_NAMES: [&str; 2] = [READY_SERVICE, "hubble.server.Observer"];

/// Every service name the health service answers: `""` (liveness) and the
/// Observer's names (readiness).
pub const HEALTH_SERVICES: [&str; 3] = ["", OBSERVER_NAMES[0], OBSERVER_NAMES[1]];

/// The health service, kept in step with whether a datapath is loaded.
pub(super) async fn service(shared: &Arc<Shared>) -> HealthServer<impl Health> {
    let (health, svc) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    let mut loaded = shared.loaded.subscribe();
    let status = |up: bool| if up { ServingStatus::Serving } else { ServingStatus::NotServing };
    let now = status(*loaded.borrow_and_update());
    for name in OBSERVER_NAMES {
        health.set_service_status(name, now).await;
    }
    tokio::spawn(async move {
        while loaded.changed().await.is_ok() {
            let now = status(*loaded.borrow_and_update());
            for name in OBSERVER_NAMES {
                health.set_service_status(name, now).await;
            }
        }
    });
    svc
}
