//! load → attach → detach → unload on the real kernel leaves nothing behind,
//! and every refusal on the way is a clear error.

mod common;

use common::{TestBpffs, Veth, bpftool_links, bpftool_map_ids, bpftool_prog_ids, sh};
use dpdbg::Error;
use dpdbg::datapath::{self, AttachMode, Hook, Settings};

fn loaded_ids(st: &datapath::Status) -> (Vec<u64>, Vec<u64>) {
    (st.programs.iter().map(|p| p.id as u64).collect(), st.maps.iter().map(|m| m.id as u64).collect())
}

#[test]
fn tcx_lifecycle_leaves_nothing_behind() {
    let fs = TestBpffs::new();
    let veth = Veth::new();
    datapath::load(fs.path(), &Settings::default()).unwrap();
    let st = datapath::status(fs.path()).unwrap();
    assert!(st.loaded);
    let (progs, maps) = loaded_ids(&st);
    assert_eq!(progs.len(), 4, "the live pair and trace's dry-run pair");
    let all = bpftool_prog_ids();
    assert!(progs.iter().all(|p| all.contains(p)), "bpftool sees our programs");

    let att = datapath::attach(fs.path(), &veth.host, Some(AttachMode::Tcx)).unwrap();
    assert_eq!(att.len(), 2);
    let st = datapath::status(fs.path()).unwrap();
    assert_eq!(st.interfaces.len(), 2);
    assert!(st.interfaces.iter().all(|a| a.attached && a.mode == AttachMode::Tcx && a.interface == veth.host));
    let links = bpftool_links();
    let ours: Vec<_> = links.iter().filter(|(_, p)| progs.contains(p)).collect();
    assert_eq!(ours.len(), 2, "bpftool sees one link per hook: {links:?}");

    // Pinned links keep the programs attached after the process lets go.
    let st_again = datapath::status(fs.path()).unwrap();
    assert!(st_again.interfaces.iter().all(|a| a.attached));

    datapath::detach(fs.path(), &veth.host).unwrap();
    let st = datapath::status(fs.path()).unwrap();
    assert!(st.interfaces.is_empty());
    assert!(!bpftool_links().iter().any(|(_, p)| progs.contains(p)), "links gone after detach");

    datapath::attach(fs.path(), &veth.host, None).unwrap();
    let r = datapath::unload(fs.path()).unwrap();
    assert_eq!(r.detached, vec![veth.host.clone()]);
    assert!(!fs.path().join("dpdbg").exists(), "no pin left");
    let all = bpftool_prog_ids();
    assert!(!progs.iter().any(|p| all.contains(p)), "programs gone after unload");
    assert!(!bpftool_links().iter().any(|(_, p)| progs.contains(p)), "links gone after unload");
    // Map release is deferred to an RCU grace period; give it a moment.
    let mut left = vec![];
    for _ in 0..50 {
        let all_maps = bpftool_map_ids();
        left = maps.iter().filter(|m| all_maps.contains(m)).copied().collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(left.is_empty(), "maps left after unload: {left:?}");
}

#[test]
fn clsact_lifecycle() {
    let fs = TestBpffs::new();
    let veth = Veth::new();
    datapath::load(fs.path(), &Settings::default()).unwrap();
    datapath::attach(fs.path(), &veth.host, Some(AttachMode::Clsact)).unwrap();
    let st = datapath::status(fs.path()).unwrap();
    assert!(st.interfaces.iter().all(|a| a.mode == AttachMode::Clsact));
    let ingress = sh("tc", &["filter", "show", "dev", &veth.host, "ingress"]);
    let egress = sh("tc", &["filter", "show", "dev", &veth.host, "egress"]);
    assert!(ingress.contains("from_endpoint"), "{ingress}");
    assert!(egress.contains("to_endpoint"), "{egress}");
    assert!(matches!(
        datapath::attach(fs.path(), &veth.host, Some(AttachMode::Tcx)),
        Err(Error::AlreadyAttached { .. })
    ));
    datapath::unload(fs.path()).unwrap();
    let ingress = sh("tc", &["filter", "show", "dev", &veth.host, "ingress"]);
    assert!(!ingress.contains("from_endpoint"), "filter removed: {ingress}");
}

#[test]
fn refusals_are_clear_errors() {
    let fs = TestBpffs::new();
    let veth = Veth::new();

    let e = datapath::attach(fs.path(), &veth.host, None).unwrap_err();
    assert!(matches!(e, Error::NotLoaded { .. }), "{e}");
    assert!(e.to_string().contains("dpdbg datapath load"), "{e}");
    assert!(matches!(datapath::unload(fs.path()), Err(Error::NotLoaded { .. })));

    let plain = tempfile::tempdir().unwrap();
    let e = datapath::load(plain.path(), &Settings::default()).unwrap_err();
    assert!(matches!(e, Error::BpffsNotMounted { .. }), "{e}");
    assert!(e.to_string().contains(&format!("mount -t bpf bpf {}", plain.path().display())), "{e}");

    let bad = Settings { snaplen: 4096, ..Settings::default() };
    assert!(matches!(datapath::load(fs.path(), &bad), Err(Error::InvalidInput(_))));
    assert!(!fs.path().join("dpdbg").exists(), "a refused load pins nothing");

    datapath::load(fs.path(), &Settings::default()).unwrap();
    let e = datapath::load(fs.path(), &Settings::default()).unwrap_err();
    assert!(matches!(e, Error::AlreadyLoaded { .. }), "{e}");

    let e = datapath::attach(fs.path(), "dpdbg-nonesuch", None).unwrap_err();
    assert!(matches!(e, Error::NoSuchInterface { .. }), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");

    datapath::attach(fs.path(), &veth.host, None).unwrap();
    let e = datapath::attach(fs.path(), &veth.host, None).unwrap_err();
    assert!(matches!(e, Error::AlreadyAttached { direction: "ingress", .. }), "{e}");

    let e = datapath::detach(fs.path(), "dpdbg-nonesuch").unwrap_err();
    assert!(matches!(e, Error::NotAttached { .. }), "{e}");

    // An interface that vanished leaves a stale pin; status says so, detach clears it.
    drop(veth);
    let st = datapath::status(fs.path()).unwrap();
    assert!(st.interfaces.iter().all(|a| !a.attached && a.ifindex.is_none()));
    let name = st.interfaces[0].interface.clone();
    datapath::detach(fs.path(), &name).unwrap();
    assert!(datapath::status(fs.path()).unwrap().interfaces.is_empty());
}

#[test]
fn verifier_rejection_shows_the_log_tail() {
    static BAD: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/verifier_reject.o"));
    let fs = TestBpffs::new();
    let e = datapath::load_object(fs.path(), &Settings::default(), BAD).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::VerifierRejected { .. }), "{msg}");
    assert!(msg.contains("from_endpoint"), "{msg}");
    assert!(msg.contains("invalid access to packet") || msg.contains("R1"), "verifier's words: {msg}");
    assert!(!fs.path().join("dpdbg").exists(), "a rejected load pins nothing");
}

#[test]
fn settings_roundtrip_through_the_pinned_config() {
    let fs = TestBpffs::new();
    let s = Settings {
        transport: datapath::Transport::Perf,
        snaplen: 64,
        aggregation: datapath::Aggregation::None,
        debug: true,
        max_entries: vec![("ct4".into(), 1024)],
    };
    datapath::load(fs.path(), &s).unwrap();
    let st = datapath::status(fs.path()).unwrap();
    let got = st.settings.unwrap();
    assert_eq!(got.transport, datapath::Transport::Perf);
    assert_eq!(got.snaplen, 64);
    assert_eq!(got.aggregation, datapath::Aggregation::None);
    assert!(got.debug);
    let ct4 = st.maps.iter().find(|m| m.name == "ct4").unwrap();
    assert_eq!(ct4.max_entries, 1024);
    let _ = Hook::BOTH;
}

#[test]
fn status_reports_event_losses_and_undecodable_records() {
    let fs = TestBpffs::new();
    datapath::load(fs.path(), &Settings::default()).unwrap();
    let st = datapath::status(fs.path()).unwrap();
    assert_eq!((st.events_lost, st.events_undecodable), (Some(0), Some(0)));
    let maps = dpdbg::maps::Maps::open(fs.path()).unwrap();
    maps.count_in_metrics(dpdbg::abi::Reason::EVENT_UNDECODABLE, 3).unwrap();
    maps.count_in_metrics(dpdbg::abi::Reason::EVENT_UNDECODABLE, 2).unwrap();
    let st = datapath::status(fs.path()).unwrap();
    assert_eq!(st.events_undecodable, Some(5));
}

/// `prog list --stats N` reports the N seconds asked for, not what the
/// program ran before them while statistics were already on.
#[test]
fn program_stats_cover_the_window_only() {
    use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
    let fs = TestBpffs::new();
    datapath::load(fs.path(), &Settings::default()).unwrap();
    let prog = SchedClassifier::from_pin(datapath::Pins::new(fs.path()).prog(datapath::PROG_FROM_ENDPOINT)).unwrap();
    let id = prog.info().unwrap().id();
    let _stats = dpdbg::progs::enable_stats().unwrap();
    let pkt = [0u8; 64];
    let mut o = TestRunOptions::new();
    o.data_in = Some(&pkt);
    o.repeat = 5000;
    prog.test_run(o).unwrap();
    let lifetime: u64 = {
        let v: serde_json::Value =
            serde_json::from_str(&sh("bpftool", &["-j", "prog", "show", "id", &id.to_string()])).unwrap();
        v["run_cnt"].as_u64().unwrap_or(0)
    };
    assert!(lifetime >= 5000, "the runs before the window counted: {lifetime}");
    let progs = dpdbg::progs::list(Some(std::time::Duration::from_millis(200))).unwrap();
    let ours = progs.iter().find(|p| p.id == id).unwrap();
    assert_eq!(ours.run_count, Some(0), "nothing ran in the window: {ours:?}");
    assert_eq!(ours.avg_ns, None);
}
