//! The dashboard's conntrack reader (issue 24, row 4): it keeps the tables
//! open between reads, so it must give what a fresh read gives, and follow
//! a datapath loaded again (new pins, new maps) instead of reading the old.

mod common;

use dpdbg::abi::{self, Ct4Key, CtEntry};
use dpdbg::datapath::{self, Settings};
use dpdbg::maps::ct::{self, CtFilter, CtReader, CtView};

fn put(bpffs: &std::path::Path, first: u8, n: u8) {
    let data = aya::maps::MapData::from_pin(datapath::Pins::new(bpffs).map("ct4")).unwrap();
    let mut m: aya::maps::HashMap<_, Ct4Key, CtEntry> =
        aya::maps::HashMap::try_from(aya::maps::Map::from_map_data(data).unwrap()).unwrap();
    let now = dpdbg::sys::monotonic_coarse_ns();
    for i in first..first + n {
        let k = Ct4Key {
            saddr: [10, 0, 0, i],
            daddr: [10, 0, 1, 1],
            sport: 40000 + i as u16,
            dport: 80,
            proto: 6,
            direction: abi::DIR_EGRESS,
            ..Default::default()
        };
        let e = CtEntry {
            created_ns: now,
            last_seen_ns: now,
            lifetime_s: 3600,
            packets_fwd: i as u64,
            bytes_fwd: 100 * i as u64,
            ..Default::default()
        };
        m.insert(k, e, 0).unwrap();
    }
}

fn fresh(bpffs: &std::path::Path) -> Vec<CtView> {
    let mut v = Vec::new();
    ct::for_each(bpffs, &CtFilter::default(), |x| {
        v.push(x);
        Ok(())
    })
    .unwrap();
    v
}

fn kept(r: &mut CtReader, filter: &CtFilter) -> Vec<CtView> {
    let mut v = Vec::new();
    let n = r.for_each(filter, |x| v.push(x)).unwrap();
    assert_eq!(n as usize, v.len());
    v
}

/// In one order, ages and times left aside (the clock moves between reads).
fn sorted(mut v: Vec<CtView>) -> Vec<CtView> {
    v.sort_by_key(|x| (x.src, x.sport));
    for x in &mut v {
        (x.age_s, x.expires_in_s) = (0, 0);
    }
    v
}

#[test]
fn a_kept_reader_reads_what_a_fresh_read_does_and_follows_a_new_load() {
    let fs = common::TestBpffs::new();
    let bpffs = fs.path();
    datapath::load(bpffs, &Settings::default()).unwrap();
    put(bpffs, 1, 20);
    let mut r = CtReader::new(bpffs);
    let first = sorted(kept(&mut r, &CtFilter::default()));
    assert_eq!(first.len(), 20);
    assert_eq!(first, sorted(fresh(bpffs)));
    // Read again after a change: the same tables, the new counts.
    put(bpffs, 21, 5);
    assert_eq!(sorted(kept(&mut r, &CtFilter::default())), sorted(fresh(bpffs)));
    // Filters as ct::for_each takes them.
    let v6 = CtFilter { family: Some(abi::FAMILY_IPV6), ..CtFilter::default() };
    assert!(kept(&mut r, &v6).is_empty());
    let one = CtFilter { port: Some(40003), ..CtFilter::default() };
    assert_eq!(kept(&mut r, &one).iter().map(|x| x.sport).collect::<Vec<_>>(), [40003]);

    // Unloaded: an error naming it, not the old tables' entries.
    datapath::unload(bpffs).unwrap();
    assert!(r.for_each(&CtFilter::default(), |_| {}).is_err());
    // Loaded again, with other entries: those, not the first load's.
    datapath::load(bpffs, &Settings::default()).unwrap();
    put(bpffs, 100, 3);
    let again = sorted(kept(&mut r, &CtFilter::default()));
    assert_eq!(again.iter().map(|x| x.sport).collect::<Vec<_>>(), [40100, 40101, 40102]);
    assert_eq!(again, sorted(fresh(bpffs)));
}
