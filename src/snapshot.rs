//! What one refresh of the dashboard reads from a node, as one value of the
//! core's own types: `dpdbg tui` on the node reads it here; `dpdbg serve`
//! reads the same here and sends it as JSON (`dpdbg.v1.Snapshot`) to a
//! dashboard elsewhere, which reads it back into these types with serde. The
//! documents inside are those the CLI prints (`datapath status`, `bpf
//! endpoint list`, `bpf policy get`, `bpf ct list`, `bpf metrics list`,
//! `prog list`), so both ends hold the same values.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::datapath::{Runtime, Status};
use crate::maps::ct::{CtFilter, CtView};
use crate::maps::{Endpoint, Maps, Metric, PolicyRule};
use crate::progs::ProgSummary;
use crate::{Error, Result};

/// What a refresh asks for beyond the maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    /// The datapath's status (without the maps' fill) and run-time settings.
    pub status: bool,
    /// Every program with the kernel's run count and time as they stand.
    pub programs: bool,
}

/// One reading of a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    /// Whether a datapath was loaded when the maps were read (without one
    /// the lists below are empty).
    pub loaded: bool,
    /// `datapath status` without the maps' fill, when asked.
    pub status: Option<Status>,
    /// `datapath config`'s run-time settings, with the status.
    pub runtime: Option<Runtime>,
    pub endpoints: Vec<Endpoint>,
    /// The names of the endpoints' interfaces on the node, by index.
    pub ifnames: Vec<(u32, String)>,
    pub rules: Vec<PolicyRule>,
    pub conntrack: Vec<CtView>,
    pub metrics: Vec<Metric>,
    /// When asked.
    pub programs: Option<Vec<ProgSummary>>,
    /// Endpoint names and identity labels (`bpf endpoint`, `bpf identity`).
    #[serde(default)]
    pub names: crate::maps::Names,
}

/// Reads the node: the status and programs when asked, then every map the
/// dashboard shows (conntrack in batches). An unloaded datapath is no error:
/// `loaded` is false and the maps are empty.
pub fn read(bpffs: &Path, want: Want) -> Result<NodeSnapshot> {
    Reader::new(bpffs).read(want)
}

/// Reads the node again and again, as a dashboard does every second: what
/// can be kept between reads (the conntrack tables open, their buffers) is.
pub struct Reader {
    bpffs: std::path::PathBuf,
    ct: crate::maps::ct::CtReader,
}

impl Reader {
    pub fn new(bpffs: &Path) -> Reader {
        Reader { bpffs: bpffs.to_path_buf(), ct: crate::maps::ct::CtReader::new(bpffs) }
    }

    /// As [`read`].
    pub fn read(&mut self, want: Want) -> Result<NodeSnapshot> {
        self.read_with(want, true)
    }

    /// As [`read`]; the conntrack tables only when `conntrack` (a view that
    /// shows none of it need not read ten thousand entries).
    pub fn read_with(&mut self, want: Want, conntrack: bool) -> Result<NodeSnapshot> {
        let bpffs = &self.bpffs;
        let mut s = NodeSnapshot::default();
        if want.status {
            s.status = Some(crate::datapath::status_brief(bpffs)?);
            s.runtime = crate::datapath::runtime(bpffs).ok();
        }
        if want.programs {
            s.programs = Some(crate::progs::list_totals()?);
        }
        let maps = match Maps::open(bpffs) {
            Ok(m) => m,
            Err(Error::NotLoaded { .. }) => return Ok(s),
            Err(e) => return Err(e),
        };
        s.loaded = true;
        s.endpoints = maps.endpoint_list()?;
        for e in &s.endpoints {
            if !s.ifnames.iter().any(|(i, _)| *i == e.ifindex)
                && let Some(n) = crate::sys::ifname(e.ifindex)
            {
                s.ifnames.push((e.ifindex, n));
            }
        }
        s.names = maps.names()?;
        s.rules = maps.policy_rules()?;
        s.metrics = maps.metrics()?;
        if conntrack {
            let ct = &mut s.conntrack;
            self.ct.for_each(&CtFilter::default(), |v| ct.push(v))?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{self, PolicyKey, PolicyValue};
    use crate::datapath::{Aggregation, AttachMode, Hook, LoadState, OBJECT_SOURCE};
    use crate::maps::ct::{STATES, flag_names};
    use crate::pins::Transport;

    /// A snapshot with every kind of value in it, words of every table
    /// (a field added later takes its default until named here).
    #[allow(clippy::needless_update)]
    fn full() -> NodeSnapshot {
        let ct = |state: &'static str, flags: u8, direction: u8| CtView {
            family: 4,
            proto: 6,
            direction: abi::direction_text(direction),
            src: "198.18.0.1".parse().unwrap(),
            dst: "198.18.0.2".parse().unwrap(),
            sport: 40000,
            dport: 80,
            state,
            flags: flag_names(flags),
            tcp_flags_fwd: 0x12,
            tcp_flags_rev: 0x10,
            packets_fwd: 3,
            bytes_fwd: 300,
            packets_rev: 2,
            bytes_rev: 200,
            src_identity: 1001,
            lifetime_s: 21600,
            age_s: 5,
            expires_in_s: -3,
        };
        // As `datapath status -o json` prints it (fields this test does not
        // name take their defaults).
        let status: Status = serde_json::from_value(serde_json::json!({
            "loaded": true,
            "state": "loaded",
            "partial": null,
            "busy_pid": null,
            "object": {"source": OBJECT_SOURCE, "size_bytes": 1, "btf_types": 0},
            "pin_dir": "/sys/fs/bpf/dpdbg",
            "features": {"kernel": "6.12.0", "tcx": true, "ringbuf": true},
            "settings": {"transport": "perf", "snaplen": 128, "aggregation": "medium", "debug": false},
            "clock": "jiffies (HZ 250)",
            "events_lost": 1,
            "events_undecodable": 0,
            "programs": [{"name": "from_endpoint", "id": 11, "tag": "00", "pin": "/p"}],
            "interfaces": [{
                "interface": "dpl1e1", "ifindex": 7, "hook": "egress", "program": "to_endpoint",
                "mode": "clsact", "attached": false, "pin": "/l"
            }],
            "maps": [],
            "agent": null
        }))
        .unwrap();
        assert_eq!(status.state, LoadState::Loaded);
        assert_eq!(status.settings.as_ref().map(|s| s.transport), Some(Transport::Perf));
        assert_eq!(
            status.interfaces.iter().map(|a| (a.hook, a.program, a.mode)).collect::<Vec<_>>(),
            [(Hook::Egress, Hook::Egress.program(), AttachMode::Clsact)]
        );
        NodeSnapshot {
            loaded: true,
            status: Some(status),
            runtime: Some(Runtime { aggregation: Aggregation::Maximum, debug: true }),
            endpoints: vec![Endpoint {
                ip: "fd00::1".parse().unwrap(),
                endpoint_id: 101,
                identity: 1001,
                ifindex: 7,
                mac: "02:00:00:00:00:01".into(),
                enforce_ingress: true,
                enforce_egress: false,
            }],
            ifnames: vec![(7, "dpl1e1".into())],
            rules: vec![PolicyRule::new(
                &PolicyKey { endpoint_id: 101, identity: 2, dport: 80, proto: 6, direction: abi::DIR_EGRESS },
                &PolicyValue { action: abi::POLICY_DENY, packets: 4, bytes: 400, ..Default::default() },
            )],
            conntrack: STATES
                .iter()
                .zip([0u8, 0x0f, 0x01, 0x08, 0x02])
                .map(|(s, f)| ct(s, f, abi::DIR_EGRESS))
                .chain([ct("NEW", 0, abi::DIR_INGRESS)])
                .collect(),
            metrics: (0..=u8::MAX)
                .map(|r| Metric {
                    reason: r,
                    reason_text: abi::Reason(r).text(),
                    direction: "ingress",
                    packets: 1,
                    bytes: 2,
                })
                .collect(),
            programs: Some(vec![ProgSummary {
                id: 11,
                prog_type: crate::progs::prog_type_name(3),
                name: "from_endpoint".into(),
                tag: "00".into(),
                attached: vec!["tcx ingress dpl1e1".into()],
                map_ids: vec![1, 2],
                run_count: Some(10),
                run_time_ns: Some(1000),
                avg_ns: Some(100.0),
            }]),
            ..NodeSnapshot::default()
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_it_was_written() {
        let s = full();
        let json = serde_json::to_vec(&s).unwrap();
        let back: NodeSnapshot = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_policy_rule_gives_back_its_key_and_value() {
        let k = PolicyKey { endpoint_id: 7, identity: 0, dport: 53, proto: 17, direction: abi::DIR_EGRESS };
        for action in [abi::POLICY_ALLOW, abi::POLICY_DENY] {
            let v = PolicyValue { action, packets: 9, bytes: 900, ..Default::default() };
            assert_eq!(PolicyRule::new(&k, &v).entry(), (k, v));
        }
    }
}
