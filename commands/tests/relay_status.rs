//! `dpdbg observe` against Hubble Relay: a relay interleaves node status
//! events (`GetFlowsResponse.node_status`, relay.NodeStatusEvent) with the
//! flows of its nodes. Hubble's printer skips the informational ones
//! (NODE_CONNECTED, NODE_GONE) and writes NODE_UNAVAILABLE and NODE_ERROR to
//! stderr, never among the flows on stdout. Seen with the real hubble-relay
//! (built by hand, which CI cannot do): dpdbg printed a bare
//! `{"node_name":…,"time":…}` line on stdout for each, in every format.
//!
//! The relay is stood in for here by an Observer server that answers
//! GetFlows with the responses the real relay sent in that run, in its order.

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Output;
use std::time::Duration;

use dpdbg_api::flow::{self, Endpoint, Flow, Ip, Layer4, Tcp, Verdict, layer4};
use dpdbg_api::observer::get_flows_response::ResponseTypes;
use dpdbg_api::observer::observer_server::{Observer, ObserverServer};
use dpdbg_api::observer::{
    GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest, GetNodesResponse,
    ServerStatusRequest, ServerStatusResponse,
};
use dpdbg_api::relay::{NodeState, NodeStatusEvent};
use dpdbg_api::tonic::{self, Request, Response, Status};

/// 2026-12-02T07:09:29Z: the responses are stamped milliseconds after it.
const T0: i64 = 1_796_195_369;

fn time(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: T0 + ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

fn status(state: NodeState, nodes: &[&str], message: &str, ms: i64) -> GetFlowsResponse {
    GetFlowsResponse {
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: state as i32,
            node_names: nodes.iter().map(|n| n.to_string()).collect(),
            message: message.into(),
        })),
        // The relay names itself here ("vm" in the run by hand).
        node_name: "relay-host".into(),
        time: Some(time(ms)),
    }
}

fn flow(node: &str, sport: u32, ms: i64) -> GetFlowsResponse {
    let ep = |id, identity, pod: &str| Endpoint {
        id,
        identity,
        namespace: "lab".into(),
        labels: vec![format!("k8s:app={pod}")],
        pod_name: pod.into(),
    };
    GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(Flow {
            time: Some(time(ms)),
            verdict: Verdict::Forwarded as i32,
            ip: Some(Ip {
                source: "10.200.0.1".into(),
                destination: "10.200.0.2".into(),
                ip_version: 1,
                ..Default::default()
            }),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(Tcp {
                    source_port: sport,
                    destination_port: 8080,
                    flags: Some(flow::TcpFlags { syn: true, ..Default::default() }),
                })),
            }),
            source: Some(ep(101, 1001, "ep1")),
            destination: Some(ep(102, 1002, "ep2")),
            node_name: node.into(),
            r#type: flow::FlowType::L3L4 as i32,
            ..Default::default()
        })),
        node_name: node.into(),
        time: Some(time(ms)),
    }
}

/// The relay's answer to one GetFlows, in the order the real relay sent it:
/// who is connected, flows, a node going away, more flows, a node's error.
fn script() -> Vec<GetFlowsResponse> {
    vec![
        status(NodeState::NodeConnected, &["node-a", "node-b"], "", 0),
        flow("node-a", 40001, 1),
        flow("node-b", 40002, 2),
        status(NodeState::NodeUnavailable, &["node-b"], "", 3),
        flow("node-a", 40003, 4),
        status(NodeState::NodeError, &["node-a"], "rpc error: buffer full", 5),
        status(NodeState::NodeGone, &["node-b"], "", 6),
    ]
}

struct FakeRelay;

type FlowStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<GetFlowsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Observer for FakeRelay {
    type GetFlowsStream = FlowStream;

    async fn get_flows(&self, _: Request<GetFlowsRequest>) -> Result<Response<FlowStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::iter(script().into_iter().map(Ok)))))
    }

    async fn get_nodes(&self, _: Request<GetNodesRequest>) -> Result<Response<GetNodesResponse>, Status> {
        Ok(Response::new(GetNodesResponse::default()))
    }

    async fn server_status(&self, _: Request<ServerStatusRequest>) -> Result<Response<ServerStatusResponse>, Status> {
        Ok(Response::new(ServerStatusResponse { num_flows: 3, max_flows: 8192, ..Default::default() }))
    }

    async fn get_namespaces(
        &self,
        _: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        Ok(Response::new(GetNamespacesResponse::default()))
    }
}

/// Serves the stand-in on a loopback port of its own; the runtime stops with the test.
fn relay() -> (tokio::runtime::Runtime, SocketAddr) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(ObserverServer::new(FakeRelay))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    std::thread::sleep(Duration::from_millis(50));
    (rt, addr)
}

fn observe(addr: SocketAddr, args: &[&str]) -> Output {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .args(["observe", "--server", &addr.to_string(), "--last", "20"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "observe {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

fn lines(b: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(b).lines().map(str::to_string).collect()
}

#[test]
fn node_status_events_go_to_stderr_as_hubble_prints_them() {
    let (_rt, addr) = relay();

    // Compact: three flows on stdout, the unavailable node and the error on
    // stderr with Hubble's wording and prefix; connected and gone are not printed.
    let o = observe(addr, &[]);
    let out = lines(&o.stdout);
    assert_eq!(out.len(), 3, "only the flows on stdout: {out:#?}");
    assert!(out.iter().all(|l| l.contains("lab/ep1:400") && l.contains("lab/ep2:8080")), "{out:#?}");
    let err = lines(&o.stderr);
    assert_eq!(
        err,
        [
            "Dec  2 07:09:29.003 [relay-host]: 1 nodes are unavailable: node-b",
            "Dec  2 07:09:29.005 [relay-host]: Error \"rpc error: buffer full\" on 1 nodes: node-a",
        ],
        "stderr"
    );

    // JSON: flows only on stdout; the two that matter as JSON objects on stderr.
    let o = observe(addr, &["-o", "json"]);
    let out = lines(&o.stdout);
    assert_eq!(out.len(), 3, "{out:#?}");
    for l in &out {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v.get("flow").is_some(), "a flow on stdout: {l}");
    }
    let err: Vec<serde_json::Value> = lines(&o.stderr).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(err.len(), 2, "{err:#?}");
    assert_eq!(err[0]["node_status"]["state_change"], "NODE_UNAVAILABLE");
    assert_eq!(err[0]["node_status"]["node_names"], serde_json::json!(["node-b"]));
    assert_eq!(err[1]["node_status"]["state_change"], "NODE_ERROR");
    assert_eq!(err[1]["node_status"]["message"], "rpc error: buffer full");
    assert_eq!(err[1]["node_name"], "relay-host");

    // Dict: the flows' blocks on stdout, the node events' blocks on stderr.
    let o = observe(addr, &["-o", "dict"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("  TIMESTAMP:").count(), 3, "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("      STATE: NODE_UNAVAILABLE\n      NODES: node-b\n    MESSAGE: N/A"), "{err}");
    assert!(
        err.contains("      STATE: NODE_ERROR\n      NODES: node-a\n    MESSAGE: \"rpc error: buffer full\""),
        "{err}"
    );
    assert!(!err.contains("NODE_CONNECTED") && !err.contains("NODE_GONE"), "{err}");

    // Table: three rows under the header.
    let o = observe(addr, &["-o", "table"]);
    assert_eq!(lines(&o.stdout).len(), 4, "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(lines(&o.stderr).len(), 2, "{}", String::from_utf8_lossy(&o.stderr));
}
