//! The metrics map: packets and bytes by reason and direction, per CPU.

use aya::maps::{MapData, PerCpuArray};
use serde::{Deserialize, Serialize};

use super::{Maps, open, typed};
use crate::abi::{self, MetricsValue, Reason, direction_text};
use crate::{Error, Result};

/// One metrics row, summed over CPUs (`bpf metrics list`'s rows).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Metric {
    pub reason: u8,
    #[serde(deserialize_with = "crate::words::reason_text")]
    pub reason_text: crate::words::Word,
    #[serde(deserialize_with = "crate::words::direction")]
    pub direction: crate::words::Word,
    pub packets: u64,
    pub bytes: u64,
}

impl Maps {
    /// Adds `n` to a counter user space keeps in the metrics map beside the
    /// datapath's (event records a reader could not decode), so `datapath
    /// status` and `bpf metrics list` show it whoever read the events.
    pub fn count_in_metrics(&self, reason: Reason, n: u64) -> Result<()> {
        let mut m: PerCpuArray<MapData, MetricsValue> =
            typed("metrics", PerCpuArray::try_from(open(&self.pins, "metrics")?))?;
        let idx = reason.0 as u32 * 2;
        let vals = typed("metrics", m.get(&idx, 0))?;
        // The datapath never writes this slot: the read-modify-write races no one.
        let mut all: Vec<MetricsValue> = vals.iter().copied().collect();
        if let Some(v) = all.first_mut() {
            v.packets = v.packets.saturating_add(n);
        }
        let vals = aya::maps::PerCpuValues::try_from(all).map_err(|e| Error::bpf("map metrics", e))?;
        typed("metrics", m.set(idx, vals, 0))
    }

    /// Metrics with at least one packet, summed over CPUs.
    pub fn metrics(&self) -> Result<Vec<Metric>> {
        let m: PerCpuArray<MapData, MetricsValue> =
            typed("metrics", PerCpuArray::try_from(open(&self.pins, "metrics")?))?;
        let mut out = Vec::new();
        for idx in 0..abi::METRICS_MAX {
            let vals = typed("metrics", m.get(&idx, 0))?;
            // Saturating: counters near the top must not wrap to small numbers when summed.
            let (packets, bytes) =
                vals.iter().fold((0u64, 0u64), |(p, b), v| (p.saturating_add(v.packets), b.saturating_add(v.bytes)));
            if packets > 0 {
                let reason = Reason((idx / 2) as u8);
                out.push(Metric {
                    reason: reason.0,
                    reason_text: reason.text(),
                    direction: direction_text((idx % 2) as u8),
                    packets,
                    bytes,
                });
            }
        }
        Ok(out)
    }
}
