//! The app state driven by keys and fixed snapshots, and every view drawn
//! on a `TestBackend` and compared with the text in `tests/snapshots/`
//! (`DPDBG_UPDATE_SNAPSHOTS=1` rewrites them; review the diff).

use std::net::IpAddr;
use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use dpdbg::abi::{self, EventHdr, PolicyKey, PolicyValue};
use dpdbg::events::Event;
use dpdbg::maps::ct::CtView;
use dpdbg::maps::{Endpoint, Metric, Names, PodName};
use dpdbg::progs::ProgSummary;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::app::{Action, App, CtSort, Tab};
use crate::source::{Overview, Snapshot};
use crate::ui;

fn key(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A conntrack entry: (address, port) each way, then protocol, packets, bytes, age.
fn ct((src, sport): (&str, u16), (dst, dport): (&str, u16), proto: u8, packets: u64, bytes: u64, age: u64) -> CtView {
    CtView {
        family: if ip(src).is_ipv4() { 4 } else { 6 },
        proto,
        direction: "egress",
        src: ip(src),
        dst: ip(dst),
        sport,
        dport,
        state: "ESTABLISHED",
        flags: vec!["reply_seen"],
        tcp_flags_fwd: 0x12,
        tcp_flags_rev: 0x10,
        packets_fwd: packets / 2,
        bytes_fwd: bytes / 2,
        packets_rev: packets - packets / 2,
        bytes_rev: bytes - bytes / 2,
        src_identity: 1001,
        lifetime_s: 21600,
        age_s: age,
        expires_in_s: 21600 - age as i64,
    }
}

pub(crate) fn event(t: u8, subtype: u8, ep: u32, ns: u64, sport: u16, dport: u16) -> Event {
    let mut data = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        .tcp(sport, dport, 1000, 64240)
        .syn()
        .write(&mut data, &[])
        .unwrap();
    let hdr = EventHdr {
        timestamp_ns: ns,
        r#type: t,
        subtype,
        verdict: if t == abi::EVENT_DROP { abi::VERDICT_DROPPED } else { abi::VERDICT_FORWARDED },
        ct_state: abi::CT_NEW,
        direction: abi::DIR_INGRESS,
        family: abi::FAMILY_IPV4,
        proto: 6,
        ifindex: 7,
        endpoint_id: ep,
        src_identity: 1001,
        dst_identity: 1002,
        orig_len: data.len() as u32,
        cap_len: data.len() as u32,
        ..Default::default()
    };
    Event { hdr, data }
}

fn metric(reason: u8, packets: u64) -> Metric {
    Metric { reason, reason_text: abi::Reason(reason).text(), direction: "ingress", packets, bytes: packets * 100 }
}

fn prog(id: u32, name: &str, runs: u64, ns: u64) -> ProgSummary {
    ProgSummary {
        id,
        prog_type: "sched_cls",
        name: name.into(),
        tag: "0".into(),
        attached: vec![format!("tcx ingress dpl1e{id}")],
        map_ids: vec![],
        run_count: Some(runs),
        run_time_ns: Some(ns),
        avg_ns: None,
    }
}

/// The endpoints' names and identities' labels, as `bpf endpoint` and
/// `bpf identity` give them: 102 named, 101 not (a name is optional).
fn names() -> Names {
    let mut n = Names::default();
    n.pods.insert(102, PodName { namespace: "lab".into(), pod: "ep2".into() });
    n.labels.insert(1001, vec!["k8s:app=ep1".into()]);
    n.endpoints.insert(ip("198.18.0.2"), 102);
    n
}

/// Two refreshes a second apart: the second carries rates.
fn snapshots() -> (Snapshot, Snapshot) {
    let endpoints = vec![
        Endpoint {
            ip: ip("198.18.0.1"),
            endpoint_id: 101,
            identity: 1001,
            ifindex: 7,
            mac: "02:00:00:00:00:01".into(),
            enforce_ingress: false,
            enforce_egress: false,
        },
        Endpoint {
            ip: ip("fd00::1"),
            endpoint_id: 101,
            identity: 1001,
            ifindex: 7,
            mac: "02:00:00:00:00:01".into(),
            enforce_ingress: false,
            enforce_egress: false,
        },
        Endpoint {
            ip: ip("198.18.0.2"),
            endpoint_id: 102,
            identity: 1002,
            ifindex: 8,
            mac: "02:00:00:00:00:02".into(),
            enforce_ingress: true,
            enforce_egress: false,
        },
    ];
    let rules = vec![
        (
            PolicyKey {
                endpoint_id: 102,
                identity: 1001,
                dport: 8080u16.to_be(),
                proto: 6,
                direction: abi::DIR_INGRESS,
            },
            PolicyValue { action: abi::POLICY_ALLOW, packets: 40, bytes: 4000, ..Default::default() },
        ),
        (
            PolicyKey { endpoint_id: 102, identity: 2, dport: 0, proto: 0, direction: abi::DIR_INGRESS },
            PolicyValue { action: abi::POLICY_DENY, packets: 3, bytes: 180, ..Default::default() },
        ),
    ];
    let overview = Overview {
        loaded: true,
        programs: vec!["from_endpoint (id 11)".into(), "to_endpoint (id 12)".into()],
        attachments: vec!["dpl1e1 ingress tcx".into(), "dpl1e1 egress tcx".into()],
        transport: "ringbuf".into(),
        aggregation: "medium".into(),
        clock: "jiffies (HZ 250)".into(),
    };
    let first = Snapshot {
        at: 10.0,
        overview: Some(overview),
        endpoints: endpoints.clone(),
        ifnames: vec![(7, "dpl1e1".into()), (8, "dpl1e2".into())],
        rules: rules.clone(),
        ct: vec![
            ct(("198.18.0.1", 40000), ("198.18.0.2", 8080), 6, 10, 1000, 5),
            ct(("198.18.0.1", 40001), ("198.18.0.2", 8080), 6, 4, 400, 50),
            ct(("fd00::1", 5353), ("fd00::2", 53), 17, 2, 200, 1),
        ],
        metrics: vec![metric(0, 100), metric(133, 3)],
        programs: Some(vec![prog(11, "from_endpoint", 1000, 100_000), prog(12, "to_endpoint", 500, 40_000)]),
        events: vec![],
        traces: 0,
        events_lost: 0,
        names: Some(names()),
    };
    let mut rules2 = rules;
    rules2[0].1.packets = 60;
    rules2[1].1.packets = 5;
    let second = Snapshot {
        at: 11.0,
        overview: None,
        endpoints,
        ifnames: vec![(7, "dpl1e1".into()), (8, "dpl1e2".into())],
        rules: rules2,
        ct: vec![
            ct(("198.18.0.1", 40000), ("198.18.0.2", 8080), 6, 30, 21000, 6),
            ct(("198.18.0.1", 40001), ("198.18.0.2", 8080), 6, 4, 400, 51),
            ct(("fd00::1", 5353), ("fd00::2", 53), 17, 2, 200, 2),
        ],
        metrics: vec![metric(0, 300), metric(133, 5)],
        programs: Some(vec![prog(11, "from_endpoint", 21_000, 2_100_000), prog(12, "to_endpoint", 1500, 140_000)]),
        events: vec![
            event(abi::EVENT_DROP, 133, 102, 1_000_000_000, 41000, 22),
            event(abi::EVENT_POLICY_VERDICT, abi::MATCH_L3_L4, 102, 1_100_000_000, 40000, 8080),
            event(abi::EVENT_DROP, 133, 102, 1_200_000_000, 41001, 23),
        ],
        traces: 7,
        events_lost: 2,
        // Names come with each refresh; none here keeps the last.
        names: None,
    };
    (first, second)
}

/// An app that has taken both fixed snapshots, its wall clock pinned.
fn loaded() -> App {
    let mut app = App::new("/sys/fs/bpf".into()).with_wall_offset(1_795_651_200_000_000_000);
    let (a, b) = snapshots();
    app.ingest(a);
    app.ingest(b);
    app
}

fn render(app: &mut App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn snapshot(name: &str, text: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(format!("{name}.txt"));
    if std::env::var_os("DPDBG_UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing: run with DPDBG_UPDATE_SNAPSHOTS=1 and review it", path.display()));
    if want != text {
        let got = path.with_extension("got");
        let _ = std::fs::write(&got, text);
        panic!("{name} differs from {}: what was drawn is in {} (diff them)", path.display(), got.display());
    }
}

#[test]
fn rates_come_from_deltas_between_snapshots() {
    let app = loaded();
    assert_eq!(app.fwd_history.back(), Some(&200.0), "300 - 100 forwarded in one second");
    assert_eq!(app.drop_history.back(), Some(&2.0));
    assert_eq!(app.drops_by_reason, vec![("Policy denied (133)".to_string(), 5, 2.0)]);
    let busy = app.ct.iter().find(|r| r.view.sport == 40000).unwrap();
    assert_eq!(busy.bps, 20000.0);
    assert_eq!(app.talkers.len(), 1, "only connections that moved bytes talk: {:?}", app.talkers);
    let ep = app.endpoints.iter().find(|e| e.id == 101).unwrap();
    assert_eq!(ep.addresses.len(), 2, "one row per endpoint, every address");
    assert_eq!(ep.interface, "dpl1e1");
    assert_eq!((ep.fwd_packets, ep.fwd_pps), (36, 20.0));
    let target = app.endpoints.iter().find(|e| e.id == 102).unwrap();
    assert_eq!((target.drop_packets, target.enforcement), (2, "ingress"));
    assert_eq!(app.rules.iter().map(|r| r.pps).collect::<Vec<_>>(), vec![20.0, 2.0]);
    assert_eq!(app.drops.len(), 2);
    assert!(app.drops[0].summary.contains(":41001 -> "), "newest first: {:?}", app.drops[0]);
    assert_eq!(app.verdicts.len(), 1);
    assert_eq!(app.events_lost, 2);
    let p = &app.programs[0];
    assert_eq!((p.id, p.runs_per_s, p.avg_ns), (11, 20_000.0, 100.0));
    assert!((p.cpu_pct - 0.2).abs() < 1e-9, "2 ms of run time in a second is 0.2 % of a core: {}", p.cpu_pct);
}

#[test]
fn keys_move_between_views_and_rows() {
    let mut app = loaded();
    assert_eq!(app.on_key(key(KeyCode::Tab)), Action::None);
    assert_eq!(app.tab, Tab::Endpoints);
    app.on_key(key(KeyCode::BackTab));
    app.on_key(key(KeyCode::BackTab));
    assert_eq!(app.tab, Tab::Programs, "Shift-Tab wraps");
    app.on_key(key(KeyCode::Char('4')));
    assert_eq!(app.tab, Tab::Conntrack);
    app.on_key(key(KeyCode::Char('j')));
    app.on_key(key(KeyCode::Down));
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.selected(), 2, "the selection stops at the last row");
    app.on_key(key(KeyCode::Char('k')));
    assert_eq!(app.selected(), 1);
    app.on_key(key(KeyCode::PageUp));
    assert_eq!(app.selected(), 0);
    app.on_key(key(KeyCode::End));
    assert_eq!(app.selected(), 2);
    // Sorting cycles; the filter takes every key typed, q included, until Enter.
    assert_eq!(app.visible_ct()[0].view.sport, 40000, "by bytes first");
    app.on_key(key(KeyCode::Char('s')));
    app.on_key(key(KeyCode::Char('s')));
    assert_eq!(app.ct_sort, CtSort::Age);
    assert_eq!(app.visible_ct()[0].view.sport, 40001, "oldest first");
    app.on_key(key(KeyCode::Char('/')));
    for c in "fd00".chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
    assert_eq!(app.visible_ct().len(), 1);
    assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::None, "q is text while filtering");
    assert!(app.visible_ct().is_empty());
    app.on_key(key(KeyCode::Backspace));
    app.on_key(key(KeyCode::Enter));
    assert!(!app.filtering);
    assert_eq!(app.visible_ct().len(), 1, "the filter stays after Enter");
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.visible_ct().len(), 3, "Esc clears it");
    // Details open on the Drops view only.
    app.on_key(key(KeyCode::Enter));
    assert!(!app.detail);
    app.on_key(key(KeyCode::Char('5')));
    app.on_key(key(KeyCode::Enter));
    assert!(app.detail);
    // Help: any key closes it without acting.
    app.on_key(key(KeyCode::Char('?')));
    assert!(app.help);
    app.on_key(key(KeyCode::Char('1')));
    assert!(!app.help);
    assert_eq!(app.tab, Tab::Drops, "the key that closed the help did nothing else");
    assert_eq!(app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::Quit);
    assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
}

#[test]
fn pause_freezes_the_feeds() {
    let mut app = App::new("x".into());
    let (a, b) = snapshots();
    app.ingest(a);
    app.on_key(key(KeyCode::Char('p')));
    assert!(app.paused);
    app.ingest(b.clone());
    assert!(app.drops.is_empty() && app.verdicts.is_empty(), "nothing moves while paused");
    app.on_key(key(KeyCode::Char('p')));
    app.ingest(b);
    assert_eq!(app.drops.len(), 2);
}

#[test]
fn every_view_as_drawn() {
    let mut app = loaded();
    for (tab, name) in [
        (Tab::Overview, "overview"),
        (Tab::Endpoints, "endpoints"),
        (Tab::Policy, "policy"),
        (Tab::Conntrack, "conntrack"),
        (Tab::Drops, "drops"),
        (Tab::Programs, "programs"),
    ] {
        app.tab = tab;
        snapshot(name, &render(&mut app, 150, 30));
    }
    app.tab = Tab::Drops;
    app.detail = true;
    snapshot("drops-detail", &render(&mut app, 150, 40));
    app.tab = Tab::Conntrack;
    for k in [KeyCode::Char('/'), KeyCode::Char('f'), KeyCode::Char('d'), KeyCode::Enter] {
        app.on_key(key(k));
    }
    snapshot("conntrack-filtered", &render(&mut app, 150, 20));
    app.help = true;
    snapshot("help", &render(&mut app, 100, 24));
}

#[test]
fn an_empty_datapath_and_a_tiny_terminal() {
    let mut app = App::new("/sys/fs/bpf".into()).with_wall_offset(0);
    app.ingest(Snapshot { overview: Some(Overview::default()), ..Snapshot::default() });
    snapshot("empty-overview", &render(&mut app, 100, 20));
    app.tab = Tab::Endpoints;
    snapshot("empty-endpoints", &render(&mut app, 100, 20));
    let tiny = render(&mut app, 40, 8);
    assert!(tiny.contains("Terminal too small: 40x8"), "{tiny}");
    snapshot("tiny", &tiny);
}

#[test]
fn rates_survive_a_table_read_in_another_order() {
    let mut app = loaded();
    let (_, mut third) = snapshots();
    third.at = 12.0;
    third.events.clear();
    third.ct.reverse();
    for v in &mut third.ct {
        v.bytes_fwd += 500;
    }
    app.ingest(third);
    assert!(app.ct.iter().all(|r| r.bps == 500.0), "{:?}", app.ct.iter().map(|r| r.bps).collect::<Vec<_>>());
}

#[test]
fn the_selected_conntrack_row_stays_on_screen() {
    let mut app = App::new("x".into()).with_wall_offset(0);
    let (mut s, _) = snapshots();
    s.ct = (0..200u16).map(|i| ct(("10.0.0.1", 1000 + i), ("10.0.0.2", 80), 6, 1, 1000 - i as u64, 1)).collect();
    app.ingest(s);
    app.tab = Tab::Conntrack;
    for _ in 0..150 {
        app.on_key(key(KeyCode::Down));
    }
    assert_eq!(app.selected(), 150);
    let screen = render(&mut app, 150, 30);
    assert!(screen.contains("10.0.0.1:1150 "), "row 150 is drawn:\n{screen}");
    assert!(!screen.contains("10.0.0.1:1000 "), "the first row scrolled away");
}

/// Issue 25, item 19: one drop every two seconds made a rate of 0.5 pkt/s,
/// which the Overview truncated to 0: an empty "dropped 0 pkt/s" sparkline
/// while the Drops view listed the drops.
#[test]
fn a_trickle_of_drops_shows_on_the_overview() {
    let mut app = App::new("/sys/fs/bpf".into()).with_wall_offset(0);
    for i in 0..4u64 {
        app.ingest(Snapshot {
            at: 10.0 + 2.0 * i as f64,
            overview: (i == 0).then(Overview::default),
            metrics: vec![metric(0, 100 + i), metric(133, 3 + i)],
            ..Snapshot::default()
        });
    }
    let screen = render(&mut app, 150, 30);
    assert!(screen.contains(" forwarded 0.5 pkt/s "), "{screen}");
    assert!(screen.contains(" dropped 0.5 pkt/s "), "{screen}");
    let reason = screen.lines().find(|l| l.contains("Policy denied (133)")).unwrap();
    assert!(reason.contains(" 6 ") && reason.contains(" 0.5 "), "PACKETS and PKT/S by reason: {reason}");
    // Beside a flood a trickle still draws: any rate above zero is a bar.
    assert_eq!((ui::bar(0.0), ui::bar(0.0001), ui::bar(0.5), ui::bar(2e6)), (0, 1, 500, 2_000_000_000));
    // The dropped sparkline's two rows (under its title) hold bars.
    let lines: Vec<&str> = screen.lines().collect();
    let title = lines.iter().position(|l| l.contains(" dropped ")).unwrap();
    let at = lines[title].find(" dropped ").unwrap();
    for row in &lines[title + 1..title + 3] {
        let spark: String = row.chars().skip(lines[title][..at].chars().count()).collect();
        assert!(spark.chars().any(|c| "▁▂▃▄▅▆▇█".contains(c)), "a bar for a nonzero rate: {row}\n{screen}");
    }
    snapshot("overview-trickle", &screen);
}

/// Kernel drops (skb:kfree_skb, issue 22 item 5) are in the Drops view
/// beside the datapath's, with the kernel's reason by its name.
#[test]
fn kernel_drops_are_listed_with_the_kernels_reason() {
    let mut app = App::new("/sys/fs/bpf".into()).with_wall_offset(1_795_651_200_000_000_000);
    let (a, mut b) = snapshots();
    let no_socket =
        dpdbg::kdrop::reasons().iter().find(|(_, n)| n.as_str() == "NO_SOCKET").map_or(3, |(v, _)| *v as u8);
    let mut kernel = event(dpdbg::kdrop::EVENT_KERNEL_DROP, no_socket, 102, 1_300_000_000, 41002, 9);
    kernel.hdr.verdict = abi::VERDICT_DROPPED;
    b.events.push(kernel);
    app.ingest(a);
    app.ingest(b);
    assert_eq!(app.drops.len(), 3, "{:?}", app.drops);
    let newest = &app.drops[0];
    assert_eq!(newest.reason, format!("kernel: NO_SOCKET ({no_socket})"));
    assert!(newest.summary.contains(":41002 -> "), "{newest:?}");
    let target = app.endpoints.iter().find(|e| e.id == 102).unwrap();
    assert_eq!(target.drop_packets, 3, "the endpoint's drops count the kernel's too");
}
