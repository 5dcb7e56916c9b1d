//! The Kubernetes manifest and the image, checked against the CLI they run.
//! There is no cluster or container engine here: this test is what says the
//! DaemonSet's command, mounts, capabilities and probes are ones dpdbg takes.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::Parser;
use dpdbg_cli::{Cli, Command as Sub};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The manifest's documents as JSON, through PyYAML (python3-yaml).
fn manifest() -> Vec<Value> {
    let text = std::fs::read(repo().join("deploy/daemonset.yaml")).unwrap();
    let mut child = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the manifest is not YAML: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An argv from the manifest, parsed by the CLI as the container would run it.
fn parse(argv: &Value) -> Cli {
    let argv: Vec<&str> = argv.as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(argv[0], "dpdbg", "the image puts dpdbg on PATH: {argv:?}");
    Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"))
}

#[test]
fn the_daemonset_runs_what_dpdbg_takes() {
    let docs = manifest();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").expect("a DaemonSet");
    assert_eq!(ds["metadata"]["namespace"], "kube-system", "kubectl exec -n kube-system ds/dpdbg, as the README says");
    assert_eq!(ds["metadata"]["name"], "dpdbg");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "the datapath is on the node's interfaces");
    let c = &pod["containers"][0];

    // The command is `dpdbg serve` with a socket under the /run/dpdbg mount.
    let cli = parse(&c["command"]);
    let Sub::Serve(_) = &cli.command else { panic!("the container runs dpdbg serve: {:?}", cli.command) };
    let argv: Vec<&str> = c["command"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let socket = argv[argv.iter().position(|a| *a == "--socket").unwrap() + 1];
    assert!(socket.starts_with("/run/dpdbg/"), "{socket}");
    let listen = argv[argv.iter().position(|a| *a == "--listen").unwrap() + 1];
    assert!(listen.starts_with("127.0.0.1:"), "plain TCP is served on loopback only: {listen}");

    // Mounts: the host's bpffs (pins shared both ways) and /run/dpdbg, each from a hostPath.
    let env_bpffs = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "DPDBG_BPFFS").unwrap()["value"].clone();
    assert_eq!(cli.bpffs, PathBuf::from(env_bpffs.as_str().unwrap()), "the CLI reads DPDBG_BPFFS");
    let host_path = |mount: &str| {
        let m = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == mount).unwrap();
        let v = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == m["name"]).unwrap();
        (v["hostPath"]["path"].as_str().unwrap().to_string(), m["mountPropagation"].clone())
    };
    assert_eq!(host_path("/sys/fs/bpf"), ("/sys/fs/bpf".to_string(), Value::from("Bidirectional")));
    assert_eq!(host_path("/run/dpdbg").0, "/run/dpdbg");

    // Capabilities: what dpdbg's privilege check asks for (BPF or SYS_ADMIN, and
    // NET_ADMIN), and PERFMON for the ring buffer and program statistics.
    let caps: Vec<&str> =
        c["securityContext"]["capabilities"]["add"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for needed in ["BPF", "NET_ADMIN", "PERFMON", "SYS_ADMIN"] {
        assert!(caps.contains(&needed), "{needed} in {caps:?}");
    }
    assert_ne!(c["securityContext"]["privileged"], true, "capabilities, not privileged");

    // Probes: `dpdbg health` on the same socket; readiness asks for the service
    // that serves only while a datapath is loaded.
    for (probe, service) in [("livenessProbe", ""), ("readinessProbe", dpdbg_api::server::READY_SERVICE)] {
        let argv = &c[probe]["exec"]["command"];
        let Sub::Health(_) = parse(argv).command else { panic!("{probe} runs dpdbg health: {argv}") };
        let words: Vec<&str> = argv.as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert_eq!(words[words.iter().position(|a| *a == "--server").unwrap() + 1], socket, "{probe}");
        let asked = words.iter().position(|a| *a == "--service").map_or("", |i| words[i + 1]);
        assert_eq!(asked, service, "{probe}");
    }
}

#[test]
fn the_image_carries_the_binary_and_runs_serve() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let froms = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(froms, 2, "a build stage and a run stage");
    assert!(text.contains("cargo build --release --locked -p dpdbg-cli --bin dpdbg"), "{text}");
    assert!(text.contains("COPY --from=build /src/target/release/dpdbg /usr/local/bin/dpdbg"), "{text}");
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/dpdbg"]"#) && text.contains(r#"CMD ["serve"]"#), "{text}");
    // The run stage has tc, which dpdbg calls for clsact status, and no compiler.
    let run_stage = text.rsplit("FROM ").next().unwrap();
    assert!(run_stage.contains("iproute2") && !run_stage.contains("clang"), "{run_stage}");
}
