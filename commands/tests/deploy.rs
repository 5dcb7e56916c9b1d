//! The Kubernetes manifest held to the rules a cluster applies to it: the API
//! server's validation of a DaemonSet's pod template (mount propagation and
//! privilege, allowPrivilegeEscalation beside SYS_ADMIN, the downward API,
//! ports under hostNetwork, names), the container runtime's capability names,
//! and kubelet's `$(VAR)` expansion, and then the commands it runs held to
//! dpdbg's own CLI (the real clap tree) and server (the health services it
//! answers). scripts/test-deploy.sh runs the pod template for real (podman).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use clap::Parser;
use dpdbg_cli::{Cli, Command as Sub};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A YAML file's documents as JSON, through PyYAML (python3-yaml).
fn yaml(path: &str) -> Vec<Value> {
    let text = std::fs::read(repo().join(path)).unwrap();
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
    assert!(out.status.success(), "{path} is not YAML: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn daemonset() -> Value {
    let docs = yaml("deploy/daemonset.yaml");
    docs.into_iter().find(|d| d["kind"] == "DaemonSet").expect("a DaemonSet")
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().expect("a string").to_string()).collect()).unwrap_or_default()
}

/// The capability names Linux has (capabilities(7)), as a pod spec writes them.
const LINUX_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A DNS-1123 label (container, volume and port-less names).
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// IANA_SVC_NAME, what a port's name must be.
fn svc_name(s: &str) -> bool {
    dns_label(s) && s.len() <= 15 && s.bytes().any(|b| b.is_ascii_lowercase()) && !s.contains("--")
}

/// The env var names a `$(NAME)` in a command refers to (kubelet expands those
/// defined in the container's env and leaves the others as they are).
fn references(word: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = word;
    while let Some(i) = rest.find("$(") {
        let after = &rest[i + 2..];
        if rest[..i].ends_with('$') {
            // $$( is an escaped literal.
            rest = after;
            continue;
        }
        let Some(end) = after.find(')') else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

/// A command as kubelet would run it: every `$(VAR)` replaced by a value the
/// downward API could give it.
fn expand(argv: &[String], env: &BTreeMap<String, String>) -> Vec<String> {
    argv.iter()
        .map(|w| {
            let mut w = w.clone();
            for (k, v) in env {
                w = w.replace(&format!("$({k})"), v);
            }
            w
        })
        .collect()
}

/// An argv parsed by the CLI as the container would run it.
fn parse(argv: &[String]) -> Cli {
    assert_eq!(argv[0], "dpdbg", "the image puts dpdbg on PATH: {argv:?}");
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("dpdbg refuses the manifest's {argv:?}:\n{e}"))
}

fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    argv.iter().position(|a| a == name).map(|i| argv[i + 1].as_str())
}

#[test]
fn the_pod_template_passes_the_api_servers_validation() {
    let ds = daemonset();
    assert_eq!(ds["apiVersion"], "apps/v1");
    // The selector must select the template's pods.
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    for (k, v) in ds["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels") {
        assert_eq!(&labels[k], v, "selector {k} does not match the template's labels");
    }
    let pod = &ds["spec"]["template"]["spec"];
    let restart = pod["restartPolicy"].as_str().unwrap_or("Always");
    assert_eq!(restart, "Always", "a DaemonSet's pods may only restart Always");
    let volumes: BTreeMap<String, &Value> =
        pod["volumes"].as_array().unwrap().iter().map(|v| (v["name"].as_str().unwrap().to_string(), v)).collect();
    for (name, v) in &volumes {
        assert!(dns_label(name), "volume name {name}");
        if let Some(t) = v["hostPath"]["type"].as_str() {
            let types =
                ["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"];
            assert!(types.contains(&t), "hostPath type {t}");
            assert!(v["hostPath"]["path"].as_str().unwrap().starts_with('/'));
        }
    }
    let host_network = pod["hostNetwork"] == true;
    for c in pod["containers"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert!(dns_label(name), "container name {name}");
        let sc = &c["securityContext"];
        let privileged = sc["privileged"] == true;

        // Mounts: existing volumes, unique paths; Bidirectional only when privileged.
        let mut paths = BTreeSet::new();
        for m in c["volumeMounts"].as_array().unwrap() {
            let vol = m["name"].as_str().unwrap();
            assert!(volumes.contains_key(vol), "{name}: mount of a volume the pod lacks: {vol}");
            assert!(paths.insert(m["mountPath"].as_str().unwrap()), "{name}: mountPath twice");
            if let Some(p) = m["mountPropagation"].as_str() {
                assert!(["None", "HostToContainer", "Bidirectional"].contains(&p), "{name}: mountPropagation {p}");
                assert!(
                    p != "Bidirectional" || privileged,
                    "{name}: the API server allows mountPropagation Bidirectional only in privileged containers"
                );
            }
        }

        // Capabilities: names the runtime knows (no CAP_ prefix); SYS_ADMIN
        // or privileged is refused beside allowPrivilegeEscalation: false.
        let caps = strs(&sc["capabilities"]["add"]);
        for cap in caps.iter().chain(strs(&sc["capabilities"]["drop"]).iter()) {
            assert!(cap == "ALL" || LINUX_CAPS.contains(&cap.as_str()), "{name}: no capability {cap}");
        }
        if sc["allowPrivilegeEscalation"] == false {
            assert!(!privileged, "{name}: allowPrivilegeEscalation false with privileged");
            assert!(!caps.iter().any(|c| c == "SYS_ADMIN"), "{name}: allowPrivilegeEscalation false with SYS_ADMIN");
        }

        // Env: C identifiers, one source each; fieldRefs the downward API has.
        let mut env = BTreeSet::new();
        for e in c["env"].as_array().unwrap() {
            let n = e["name"].as_str().unwrap();
            assert!(
                n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !n.as_bytes()[0].is_ascii_digit(),
                "{name}: env name {n}"
            );
            assert!(env.insert(n.to_string()), "{name}: env {n} twice");
            assert!(e.get("value").is_some() != e.get("valueFrom").is_some(), "{name}: env {n}: value or valueFrom");
            if let Some(f) = e["valueFrom"].get("fieldRef") {
                let fields =
                    ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName"];
                let path = f["fieldPath"].as_str().unwrap();
                assert!(
                    fields.contains(&path) || path.starts_with("status.") || path.starts_with("metadata."),
                    "{name}: fieldPath {path}"
                );
                assert_eq!(f["apiVersion"].as_str().unwrap_or("v1"), "v1");
            }
        }
        // Every $(VAR) of the command and probes is defined (kubelet leaves
        // an undefined one as it is, and the process gets "$(NODE_NAME)").
        let mut argvs = vec![strs(&c["command"]), strs(&c["args"])];
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            argvs.push(strs(&c[probe]["exec"]["command"]));
        }
        for word in argvs.iter().flatten() {
            for r in references(word) {
                assert!(env.contains(&r), "{name}: $({r}) in {word:?} is not in the container's env");
            }
        }

        // Ports: valid numbers and names; under hostNetwork hostPort equals containerPort.
        let mut names = BTreeSet::new();
        for p in c["ports"].as_array().into_iter().flatten() {
            let port = p["containerPort"].as_u64().unwrap();
            assert!((1..=65535).contains(&port), "{name}: containerPort {port}");
            if let Some(n) = p["name"].as_str() {
                assert!(svc_name(n) && names.insert(n), "{name}: port name {n}");
            }
            assert!(["TCP", "UDP", "SCTP"].contains(&p["protocol"].as_str().unwrap_or("TCP")));
            if host_network && let Some(hp) = p["hostPort"].as_u64() {
                assert_eq!(hp, port, "{name}: with hostNetwork, hostPort must equal containerPort");
            }
        }

        // Probes: one handler each.
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(p) = c.get(probe) {
                let handlers = ["exec", "httpGet", "tcpSocket", "grpc"].iter().filter(|h| p.get(**h).is_some()).count();
                assert_eq!(handlers, 1, "{name}: {probe} needs exactly one handler");
            }
        }
    }
}

#[test]
fn the_container_runs_serve_as_dpdbg_takes_it() {
    let ds = daemonset();
    assert_eq!(ds["metadata"]["namespace"], "kube-system", "kubectl exec -n kube-system ds/dpdbg, as the README says");
    assert_eq!(ds["metadata"]["name"], "dpdbg");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "the datapath is on the node's interfaces");
    let c = &pod["containers"][0];

    // The node's name from the downward API, as kubelet gives it.
    let node_env = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "NODE_NAME").expect("NODE_NAME in env");
    assert_eq!(node_env["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    let env: BTreeMap<String, String> = [("NODE_NAME".to_string(), "node-a.example".to_string())].into();
    let raw = strs(&c["command"]);
    assert_eq!(flag(&raw, "--node-name"), Some("$(NODE_NAME)"), "the node's name comes from spec.nodeName");
    let argv = expand(&raw, &env);
    let cli = parse(&argv);
    let Sub::Serve(_) = &cli.command else { panic!("the container runs dpdbg serve: {:?}", cli.command) };
    assert!(argv.iter().any(|a| a == "--load"), "the agent loads a datapath when none is: {argv:?}");
    assert!(flag(&argv, "--attach").is_some(), "and attaches it to the pod interfaces: {argv:?}");

    // Where serve reads and writes: each under a mount.
    let mounts: Vec<(String, &Value)> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["mountPath"].as_str().unwrap().to_string(), m))
        .collect();
    let mounted = |path: &str| mounts.iter().any(|(m, _)| path.starts_with(&format!("{m}/")) || path == m);
    let socket = flag(&argv, "--socket").expect("--socket");
    assert!(mounted(socket), "the socket {socket} is on a mount (kubectl exec and probes find it)");
    for f in ["--tls-cert", "--tls-key", "--tls-client-ca"] {
        let file = flag(&argv, f).unwrap_or_else(|| panic!("{f}: the node's port is TLS"));
        assert!(mounted(file), "{f} {file} is on a mount");
    }
    assert!(mounted(&cli.bpffs.display().to_string()), "the bpffs dpdbg uses ({}) is mounted", cli.bpffs.display());
    let volumes = pod["volumes"].as_array().unwrap();
    let host_path = |mount: &str| {
        let m = mounts.iter().find(|(p, _)| p == mount).unwrap().1;
        let v = volumes.iter().find(|v| v["name"] == m["name"]).unwrap();
        v["hostPath"]["path"].as_str().map(str::to_string)
    };
    assert_eq!(host_path(&cli.bpffs.display().to_string()).as_deref(), Some("/sys/fs/bpf"), "the node's bpffs");

    // The TCP listener: Hubble's port, declared; not plain TCP off loopback.
    let listen: std::net::SocketAddr = flag(&argv, "--listen").expect("--listen for hubble-relay").parse().unwrap();
    assert_eq!(listen.port(), 4244, "hubble-relay dials Hubble's port");
    let ports: Vec<u64> = c["ports"].as_array().unwrap().iter().map(|p| p["containerPort"].as_u64().unwrap()).collect();
    assert!(ports.contains(&4244), "the port is declared: {ports:?}");
    // --insecure lets plain TCP off loopback; gRPC on the node's address
    // must stay TLS whatever else it lets out (Prometheus' plain HTTP).
    assert!(
        flag(&argv, "--tls-cert").is_some() && flag(&argv, "--tls-key").is_some(),
        "gRPC on the node's address is TLS: {argv:?}"
    );

    // Capabilities: what dpdbg's privilege check asks for, not privileged.
    let caps = strs(&c["securityContext"]["capabilities"]["add"]);
    for needed in ["BPF", "NET_ADMIN", "PERFMON"] {
        assert!(caps.iter().any(|c| c == needed), "{needed} in {caps:?}");
    }
    assert_ne!(c["securityContext"]["privileged"], true, "capabilities, not privileged");
}

#[test]
fn the_probes_ask_serve_for_services_it_answers() {
    let ds = daemonset();
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let socket = flag(&strs(&c["command"]), "--socket").expect("--socket").to_string();
    let env = BTreeMap::new();
    // Probes: `dpdbg health` on serve's socket, asking for services the server answers.
    for (probe, ready) in [("livenessProbe", false), ("readinessProbe", true)] {
        let argv = expand(&strs(&c[probe]["exec"]["command"]), &env);
        let Sub::Health(_) = parse(&argv).command else { panic!("{probe} runs dpdbg health: {argv:?}") };
        assert_eq!(flag(&argv, "--server"), Some(socket.as_str()), "{probe} asks serve's socket");
        let service = flag(&argv, "--service").unwrap_or("");
        assert!(dpdbg_api::server::HEALTH_SERVICES.contains(&service), "{probe}: serve does not answer {service:?}");
        // Liveness must not fail while serve waits for a datapath (a failed
        // liveness probe restarts the container); readiness waits for one.
        assert_eq!(!service.is_empty(), ready, "{probe}: {service:?}");
    }
}

/// The Services: they select the DaemonSet's pods, their target ports are
/// ports the pod declares, and `--peers-dns` names one of them.
#[test]
fn the_services_reach_the_pods_and_serve_finds_its_peers_by_one() {
    let docs = yaml("deploy/daemonset.yaml");
    let ds = daemonset();
    let ns = ds["metadata"]["namespace"].as_str().unwrap();
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    let c = &ds["spec"]["template"]["spec"]["containers"][0];
    let declared: BTreeMap<String, u64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or("").to_string(), p["containerPort"].as_u64().unwrap()))
        .collect();
    let services: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Service").collect();
    assert!(!services.is_empty(), "hubble-relay's peer service and the fleet's headless one");
    for svc in &services {
        let name = svc["metadata"]["name"].as_str().unwrap();
        assert!(dns_label(name), "Service name {name}");
        assert_eq!(svc["apiVersion"], "v1");
        assert_eq!(svc["metadata"]["namespace"], ns, "{name} beside the DaemonSet");
        let selector = svc["spec"]["selector"].as_object().unwrap_or_else(|| panic!("{name}: a selector"));
        for (k, v) in selector {
            assert_eq!(&labels[k], v, "{name} selects {k}={v}: the pods are not labelled so");
        }
        let mut names = BTreeSet::new();
        for p in svc["spec"]["ports"].as_array().unwrap() {
            let port = p["port"].as_u64().unwrap();
            assert!((1..=65535).contains(&port), "{name}: port {port}");
            let pname = p["name"].as_str().unwrap_or("");
            assert!(pname.is_empty() || (dns_label(pname) && names.insert(pname)), "{name}: port name {pname}");
            let target = match &p["targetPort"] {
                Value::String(n) => {
                    *declared.get(n).unwrap_or_else(|| panic!("{name}: targetPort {n} is no port of the pod"))
                }
                Value::Number(n) => n.as_u64().unwrap(),
                _ => port,
            };
            assert!(declared.values().any(|d| *d == target), "{name}: nothing in the pod listens on {target}");
        }
        if let Some(ip) = svc["spec"]["clusterIP"].as_str() {
            assert!(ip == "None" || ip.parse::<std::net::IpAddr>().is_ok(), "{name}: clusterIP {ip}");
        }
    }
    // serve --peers-dns NAME.NAMESPACE.svc…:PORT: a headless Service of ours
    // (its DNS name gives every pod's address) on a port it has.
    let argv = strs(&c["command"]);
    if let Some(dns) = flag(&argv, "--peers-dns") {
        let (host, port) = dns.rsplit_once(':').unwrap();
        let mut parts = host.split('.');
        let (svc_name, svc_ns) = (parts.next().unwrap(), parts.next().unwrap_or(ns));
        assert_eq!(svc_ns, ns, "{dns}");
        let svc = services
            .iter()
            .find(|s| s["metadata"]["name"] == svc_name)
            .unwrap_or_else(|| panic!("{dns}: no Service {svc_name}"));
        assert_eq!(svc["spec"]["clusterIP"], "None", "{dns}: a headless Service resolves to the pods");
        let ports: Vec<String> =
            svc["spec"]["ports"].as_array().unwrap().iter().map(|p| p["port"].to_string()).collect();
        assert!(ports.contains(&port.to_string()), "{dns}: {svc_name} has ports {ports:?}");
    }
}

#[test]
fn the_image_is_the_releases() {
    let ds = daemonset();
    let image = ds["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
    let (name, tag) = image.rsplit_once(':').expect("a tagged image");
    assert!(!name.contains('@'), "{image}");
    assert_eq!(tag, env!("CARGO_PKG_VERSION"), "the image's tag is the release's (the crate version)");
    // kustomize's images: entry names the same image, with the same tag.
    let k = &yaml("deploy/kustomization.yaml")[0];
    for r in strs(&k["resources"]) {
        assert!(repo().join("deploy").join(&r).exists(), "kustomization resource {r}");
    }
    let entry = k["images"].as_array().unwrap().iter().find(|i| i["name"] == name).expect("an images: entry");
    assert_eq!(entry["newTag"], env!("CARGO_PKG_VERSION"));
    // The manifest's command is "dpdbg": the image installs it on PATH.
    let docker = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let run_stage = docker.rsplit("\nFROM ").next().unwrap();
    assert!(run_stage.contains(" /usr/local/bin/dpdbg"), "{run_stage}");
}
