//! Who is talking (issue 26): identities with labels, endpoints with
//! names, in the maps beside the datapath; flows from `dpdbg serve` carry
//! them, Hubble's pod, namespace and label filters select by them, and
//! `GetNamespaces` lists them.

mod common;

use common::{CliLab, Server, json, jsonl, show};

use serde_json::Value;

#[test]
fn identities_and_endpoints_have_names_flows_carry_them_and_filters_use_them() {
    let lab = CliLab::up();
    // The lab's names: lab/epN, its identity labelled app=epN.
    let ids = json(lab.run(&["bpf", "identity", "list", "-o", "json"]));
    let ids = ids.as_array().unwrap();
    assert_eq!(ids[0], serde_json::json!({"id": 1, "labels": ["reserved:host"]}));
    assert_eq!(ids[1], serde_json::json!({"id": 2, "labels": ["reserved:world"]}));
    assert!(ids.contains(&serde_json::json!({"id": 1001, "labels": ["k8s:app=ep1"]})), "{ids:?}");
    let eps = json(lab.run(&["bpf", "endpoint", "list", "-o", "json"]));
    let names: Vec<&str> = eps.as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert!(names.contains(&"lab/ep1") && names.contains(&"lab/ep2"), "{eps}");
    let table = lab.run(&["bpf", "identity", "list"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("k8s:app=ep2"), "{}", show(&table));

    // Labels and names as Kubernetes takes them, or a usage error naming them.
    let o = lab.run(&["bpf", "identity", "add", "5000", "--label", "app=web", "-l", "tier=front"]);
    assert!(o.status.success(), "{}", show(&o));
    let got = json(lab.run(&["bpf", "identity", "get", "5000", "-o", "json"]));
    assert_eq!(got["labels"], serde_json::json!(["k8s:app=web", "k8s:tier=front"]));
    for (args, needle) in [
        (vec!["bpf", "identity", "add", "5001", "--label", "app=-web"], "label value"),
        (vec!["bpf", "identity", "add", "5001", "--label", "noequals"], "KEY=VALUE"),
        (vec!["bpf", "identity", "add", "2", "--label", "app=x"], "reserved"),
        (vec!["bpf", "endpoint", "set", "101", "--name", "Lab/ep1"], "namespace"),
    ] {
        let o = lab.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", show(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains(needle), "{args:?}: {}", show(&o));
    }
    let long: Vec<String> = (0..30).map(|i| format!("key{i}=value-number-{i}")).collect();
    let mut args = vec!["bpf", "identity", "add", "5002"];
    for l in &long {
        args.extend(["--label", l.as_str()]);
    }
    let o = lab.run(&args);
    assert_eq!(o.status.code(), Some(2), "labels that do not fit are refused, never cut: {}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at most 255 fit"), "{}", show(&o));
    let o = lab.run(&["bpf", "identity", "delete", "1001"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("in use by endpoint(s) 101"), "{}", show(&o));
    assert!(lab.run(&["bpf", "identity", "delete", "5000"]).status.success());

    // Flows carry the names; Hubble's filters select by them.
    for args in [
        &["bpf", "endpoint", "set", "102", "--enforce", "ingress"][..],
        &[
            "bpf",
            "policy",
            "add",
            "--endpoint",
            "102",
            "--direction",
            "ingress",
            "--action",
            "allow",
            "--proto",
            "icmp",
        ],
        &["lab", "traffic"],
    ] {
        let o = lab.run(args);
        assert!(o.status.success(), "{args:?}: {}", show(&o));
    }
    let socket = lab.dir.path().join("dpdbg.sock");
    let sock = socket.display().to_string();
    let _server = Server::start(&lab.fs.0, &socket, &[]);
    assert!(lab.run(&["lab", "traffic"]).status.success());
    // The names table is read once a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(lab.run(&["lab", "traffic"]).status.success());
    let all = jsonl(&lab.run(&["observe", "--server", &sock, "--all", "-o", "json"]));
    let flows: Vec<&Value> = all.iter().filter_map(|r| r.get("flow")).collect();
    let named = flows
        .iter()
        .find(|f| f["source"]["pod_name"] == "ep1" && f["destination"]["pod_name"] == "ep2")
        .unwrap_or_else(|| panic!("a flow from lab/ep1 to lab/ep2: {flows:#?}"));
    assert_eq!(named["source"]["namespace"], "lab");
    assert_eq!(named["source"]["labels"], serde_json::json!(["k8s:app=ep1"]));
    assert_eq!(named["destination"]["labels"], serde_json::json!(["k8s:app=ep2"]));
    // Both sides are local endpoints: each has its endpoint id, as Hubble
    // gives any local endpoint (the event's own side, and the other by its
    // address), at either hook.
    for f in flows.iter().filter(|f| f["source"]["pod_name"] == "ep1" && f["destination"]["pod_name"] == "ep2") {
        assert_eq!((&f["source"]["ID"], &f["destination"]["ID"]), (&Value::from(101), &Value::from(102)), "{f:#}");
    }
    for f in flows.iter().filter(|f| f["source"]["pod_name"] == "ep2" && f["destination"]["pod_name"] == "ep1") {
        assert_eq!((&f["source"]["ID"], &f["destination"]["ID"]), (&Value::from(102), &Value::from(101)), "{f:#}");
    }
    let select = |args: &[&str]| -> Vec<Value> {
        let mut a = vec!["observe", "--server", sock.as_str(), "--all", "-o", "json"];
        a.extend_from_slice(args);
        jsonl(&lab.run(&a)).into_iter().filter_map(|r| r.get("flow").cloned()).collect()
    };
    let pod = |f: &Value, side: &str| {
        format!("{}/{}", f[side]["namespace"].as_str().unwrap_or(""), f[side]["pod_name"].as_str().unwrap_or(""))
    };
    let ep1 = select(&["--pod", "lab/ep1"]);
    assert!(!ep1.is_empty(), "{} of {}", ep1.len(), flows.len());
    assert!(ep1.iter().all(|f| pod(f, "source") == "lab/ep1" || pod(f, "destination") == "lab/ep1"), "{ep1:#?}");
    let from = select(&["--from-pod", "lab/ep1"]);
    assert!(!from.is_empty() && from.iter().all(|f| pod(f, "source") == "lab/ep1"), "{from:#?}");
    let from2 = select(&["--from-pod", "lab/ep2"]);
    assert!(from2.iter().all(|f| pod(f, "source") == "lab/ep2"), "{from2:#?}");
    assert_eq!(from.len() + from2.len(), flows.len(), "every lab flow is from one of its two pods");
    let dropped = select(&["--pod", "lab/ep2", "--verdict", "DROPPED"]);
    assert!(!dropped.is_empty(), "the policy on ep2 dropped TCP and UDP to it");
    assert!(dropped.iter().all(|f| f["verdict"] == "DROPPED" && pod(f, "destination") == "lab/ep2"), "{dropped:#?}");
    let labelled = select(&["-l", "app=ep2"]);
    assert!(
        !labelled.is_empty()
            && labelled.iter().all(|f| f["source"]["labels"] == serde_json::json!(["k8s:app=ep2"])
                || f["destination"]["labels"] == serde_json::json!(["k8s:app=ep2"])),
        "{labelled:#?}"
    );
    let to_label = select(&["--to-label", "k8s:app in (ep2,nonesuch)"]);
    assert!(!to_label.is_empty() && to_label.iter().all(|f| pod(f, "destination") == "lab/ep2"), "{to_label:#?}");
    assert!(select(&["--namespace", "nonesuch"]).is_empty(), "no flow in a namespace nobody is in");
    assert_eq!(select(&["--namespace", "lab"]).len(), flows.len(), "every lab flow is in namespace lab");

    // The done-when, as a person reads it: observe's default (compact)
    // lines name both pods with their ports, and the names and label
    // selectors pick the flows.
    let text = String::from_utf8_lossy(&lab.run(&["observe", "--server", &sock, "--last", "20"]).stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 10, "{text}");
    let with_port = |l: &str, pod: &str| {
        l.split(' ')
            .any(|w| w.strip_prefix(pod).and_then(|w| w.strip_prefix(':')).is_some_and(|p| p.parse::<u16>().is_ok()))
    };
    assert!(
        lines.iter().any(|l| with_port(l, "lab/ep1") && with_port(l, "lab/ep2")),
        "a line with lab/ep1:PORT and lab/ep2:PORT: {text}"
    );
    let dropped1 = select(&["--pod", "lab/ep1", "--verdict", "DROPPED"]);
    assert!(!dropped1.is_empty(), "ep1's TCP and UDP to ep2 were dropped");
    assert!(
        dropped1.iter().all(|f| f["verdict"] == "DROPPED"
            && (pod(f, "source") == "lab/ep1" || pod(f, "destination") == "lab/ep1")),
        "{dropped1:#?}"
    );
    let all_dropped1 = flows
        .iter()
        .filter(|f| f["verdict"] == "DROPPED" && (pod(f, "source") == "lab/ep1" || pod(f, "destination") == "lab/ep1"))
        .count();
    assert_eq!(dropped1.len(), all_dropped1, "every one of them, and no other");
    let ep2_labelled = flows
        .iter()
        .filter(|f| {
            let l = serde_json::json!(["k8s:app=ep2"]);
            f["source"]["labels"] == l || f["destination"]["labels"] == l
        })
        .count();
    assert_eq!(labelled.len(), ep2_labelled, "-l app=ep2: every flow with ep2 on a side");

    // A client not written in Rust, its stubs made by grpcio-tools from
    // api/proto (whose Endpoint and FlowFilter carry the numbers of Hubble's
    // flow.proto: Endpoint ID 1, identity 2, namespace 3, labels 4,
    // pod_name 5; FlowFilter source_pod 2, destination_pod 4, source_label
    // 10, destination_label 11), finds the names in the flows and filters
    // by them on the server.
    let python = |args: &[&str]| -> Vec<Value> {
        let o = common::python_client(&[], &socket, args).output().unwrap();
        jsonl(&o).into_iter().filter_map(|r| r.get("flow").cloned()).collect()
    };
    let py_flows = python(&["flows-proto-names", "10000"]);
    assert_eq!(py_flows.len(), flows.len(), "the Python client reads every flow");
    let py_named: Vec<&Value> =
        py_flows.iter().filter(|f| f["source"]["pod_name"] == "ep1" && f["destination"]["pod_name"] == "ep2").collect();
    assert!(!py_named.is_empty(), "{py_flows:#?}");
    for f in &py_named {
        assert_eq!(f["source"]["namespace"], "lab", "{f:#}");
        assert_eq!(f["destination"]["namespace"], "lab", "{f:#}");
        assert_eq!(f["source"]["labels"], serde_json::json!(["k8s:app=ep1"]), "{f:#}");
        assert_eq!(f["destination"]["labels"], serde_json::json!(["k8s:app=ep2"]), "{f:#}");
        assert_eq!((&f["source"]["ID"], &f["destination"]["ID"]), (&Value::from(101), &Value::from(102)), "{f:#}");
        assert_eq!((&f["source"]["identity"], &f["destination"]["identity"]), (&Value::from(1001), &Value::from(1002)));
    }
    let py_from = python(&["flows-filtered", "10000", r#"{"source_pod": ["lab/ep1"]}"#]);
    assert_eq!(py_from.len(), from.len(), "source_pod from Python selects what --from-pod does");
    assert!(py_from.iter().all(|f| f["source"]["pod_name"] == "ep1"), "{py_from:#?}");
    let py_to = python(&["flows-filtered", "10000", r#"{"destination_label": ["k8s:app=ep2"]}"#]);
    assert!(!py_to.is_empty() && py_to.iter().all(|f| f["destination"]["pod_name"] == "ep2"), "{py_to:#?}");
    let py_none = python(&["flows-filtered", "10000", r#"{"destination_pod": ["lab/nonesuch"]}"#]);
    assert!(py_none.is_empty(), "a pod nobody is: no flow, never all of them: {py_none:#?}");
}
