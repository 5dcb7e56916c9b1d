//! load → attach → detach → unload on the real kernel leaves nothing behind,
//! and every refusal on the way is a clear error.

mod common;

use common::{TestBpffs, Veth, bpftool_links, bpftool_map_ids, bpftool_prog_ids, sh};
use dpdbg::datapath::{self, AttachMode, Hook, Settings};
use dpdbg::{Error, abi};

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

    let bad = Settings { snaplen: abi::SNAPLEN_MAX + 1, ..Settings::default() };
    let e = datapath::load(fs.path(), &bad).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    assert!(e.to_string().contains("snaplen 9217 is too large: at most 9216"), "{e}");
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

/// Every pin a complete load makes, as `status` names them.
fn every_pin() -> Vec<String> {
    let maps =
        datapath::MAPS.iter().chain([&datapath::CONFIG_MAP, &datapath::SETTINGS_MAP]).map(|m| format!("maps/{m}"));
    let progs =
        [datapath::PROG_FROM_ENDPOINT, datapath::PROG_TO_ENDPOINT, datapath::PROG_TRACE_FROM, datapath::PROG_TRACE_TO]
            .iter()
            .map(|p| format!("progs/{p}"));
    let mut all: Vec<String> = maps.chain(progs).collect();
    all.sort();
    all
}

fn sorted(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> =
        v.as_array().unwrap_or_else(|| panic!("a list: {v}")).iter().map(|s| s.as_str().unwrap().to_string()).collect();
    out.sort();
    out
}

/// Issue 25 item 8: a load killed part-way left states that `status` called
/// "not loaded" or "loaded", or could not read at all. Each state a killed
/// load can leave is made here by hand from a complete load: status names it
/// partial with exactly the pins missing, every reader refuses it pointing to
/// load and unload, and the next load cleans it up and loads again.
#[test]
fn a_partial_datapath_is_named_and_the_next_load_repairs_it() {
    let fs = TestBpffs::new();
    let pins = datapath::Pins::new(fs.path());
    let marker = pins.root().join("loading");
    // (what is removed, whether the load's "loading" marker is left)
    let cases: &[(&[&str], bool)] = &[
        (&["progs/trace_from_ep", "progs/trace_to_ep"], true),
        (&["progs/trace_to_ep"], false),
        (&["maps/ct4"], false),
        (&["maps/config", "maps/settings"], false),
        (&["progs/from_endpoint", "progs/to_endpoint", "progs/trace_from_ep", "progs/trace_to_ep"], true),
        (&[], true),
    ];
    for (removed, marker_left) in cases {
        let what = format!("{removed:?}, marker {marker_left}");
        datapath::load(fs.path(), &Settings::default()).unwrap();
        for r in *removed {
            std::fs::remove_file(pins.root().join(r)).unwrap();
        }
        if *marker_left {
            std::fs::create_dir(&marker).unwrap();
        }

        let st = serde_json::to_value(datapath::status(fs.path()).expect("status reads a partial datapath")).unwrap();
        assert_eq!(st["loaded"], false, "{what}: {st}");
        assert_eq!(st["state"], "partial", "{what}: {st}");
        let mut want_missing: Vec<String> = removed.iter().map(|s| s.to_string()).collect();
        want_missing.sort();
        assert_eq!(sorted(&st["partial"]["missing"]), want_missing, "{what}");
        let want_present: Vec<String> = every_pin().into_iter().filter(|p| !want_missing.contains(p)).collect();
        assert_eq!(sorted(&st["partial"]["present"]), want_present, "{what}");
        assert_eq!(st["partial"]["load_unfinished"], *marker_left, "{what}: {st}");

        // Readers refuse it, saying what to run.
        let errors = [
            datapath::loaded_settings(fs.path()).map(|_| ()).unwrap_err(),
            dpdbg::maps::Maps::open(fs.path()).map(|_| ()).unwrap_err(),
            dpdbg::events::EventReader::open(fs.path(), datapath::Transport::Ringbuf).map(|_| ()).unwrap_err(),
            datapath::attach(fs.path(), "lo", None).map(|_| ()).unwrap_err(),
        ];
        for e in errors {
            let msg = e.to_string();
            assert!(matches!(e, Error::Incomplete { .. }), "{what}: {msg}");
            assert!(msg.contains("dpdbg datapath load") && msg.contains("dpdbg datapath unload"), "{what}: {msg}");
            if let Some(first) = removed.first() {
                assert!(msg.contains(first), "{what}: names what is missing: {msg}");
            }
        }

        let r = serde_json::to_value(datapath::load(fs.path(), &Settings::default()).expect("load repairs")).unwrap();
        assert_eq!(sorted(&r["cleaned_up"]["missing"]), want_missing, "{what}: {r}");
        assert_eq!(r["cleaned_up"]["load_unfinished"], *marker_left, "{what}: {r}");
        let st = datapath::status(fs.path()).unwrap();
        assert!(st.loaded, "{what}");
        assert_eq!(st.programs.len(), 4, "{what}");
        assert!(!marker.exists(), "{what}: a complete load leaves no marker");
        datapath::unload(fs.path()).unwrap();
        assert!(!pins.root().exists(), "{what}: unload leaves nothing");
    }
}

/// A partial datapath still attached somewhere is not torn down by a load:
/// the load refuses, naming the interface and `unload`.
#[test]
fn a_partial_datapath_still_attached_is_left_to_unload() {
    let fs = TestBpffs::new();
    let veth = Veth::new();
    datapath::load(fs.path(), &Settings::default()).unwrap();
    datapath::attach(fs.path(), &veth.host, None).unwrap();
    let pins = datapath::Pins::new(fs.path());
    std::fs::remove_file(pins.prog(datapath::PROG_TRACE_TO)).unwrap();
    let st = serde_json::to_value(datapath::status(fs.path()).unwrap()).unwrap();
    assert_eq!(st["state"], "partial", "{st}");
    assert_eq!(st["interfaces"].as_array().map(Vec::len), Some(2), "attachments still shown: {st}");
    let e = datapath::load(fs.path(), &Settings::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains(&veth.host) && msg.contains("dpdbg datapath unload"), "{msg}");
    assert!(pins.prog(datapath::PROG_FROM_ENDPOINT).exists(), "the refused load removed nothing");
    let r = datapath::unload(fs.path()).unwrap();
    assert_eq!(r.detached, vec![veth.host.clone()]);
    datapath::load(fs.path(), &Settings::default()).unwrap();
}

/// The states between a load's first pin and its last, in the order load
/// makes them: with the marker written first and removed last, "loaded"
/// means complete. An empty pin directory (killed before the first pin) is
/// not loaded, and load goes ahead.
#[test]
fn a_load_killed_before_its_first_pin_is_not_loaded() {
    let fs = TestBpffs::new();
    let pins = datapath::Pins::new(fs.path());
    std::fs::create_dir_all(pins.root().join("maps")).unwrap();
    let st = serde_json::to_value(datapath::status(fs.path()).unwrap()).unwrap();
    assert_eq!(st["state"], "not_loaded", "{st}");
    let r = serde_json::to_value(datapath::load(fs.path(), &Settings::default()).unwrap()).unwrap();
    assert!(r["cleaned_up"].is_null(), "nothing to clean: {r}");
}
