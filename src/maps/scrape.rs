//! What one Prometheus scrape of `dpdbg serve --metrics` reads from the
//! datapath, in few system calls: the metrics map in one
//! BPF_MAP_LOOKUP_BATCH (not a lookup per slot), the entries of each map
//! that holds entries (batch reads), and the kernel's run counters of the
//! datapath's programs.

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use super::Metric;
use crate::abi::{self, MetricsValue, Reason, direction_text};
use crate::pins::{self, Pins};
use crate::syscall as raw;
use crate::{Error, Result};

/// BPF_MAP_TYPE_PERCPU_ARRAY.
const PERCPU_ARRAY: u32 = 6;

/// The metrics map's rows with at least one packet, summed over CPUs: what
/// `Maps::metrics` returns (`bpf metrics list`), read with one
/// BPF_MAP_LOOKUP_BATCH over the whole array. A kernel without batch
/// lookups on arrays (before 5.6) gets one lookup per slot.
pub fn metrics(bpffs: &Path) -> Result<Vec<Metric>> {
    let pins = Pins::new(bpffs);
    let path = pins.map("metrics");
    let fd = raw::obj_get(&path).map_err(|e| Error::io("bpf_obj_get", &path, e))?;
    let info = raw::map_info(fd.as_raw_fd()).map_err(|e| Error::io("bpf_obj_get_info_by_fd", &path, e))?;
    let value_size = std::mem::size_of::<MetricsValue>();
    if info.map_type != PERCPU_ARRAY || info.key_size != 4 || info.value_size as usize != value_size {
        return Err(Error::InvalidInput(format!(
            "{} is not the datapath's metrics map (type {}, key {} bytes, value {} bytes)",
            path.display(),
            info.map_type,
            info.key_size,
            info.value_size
        )));
    }
    let cpus = crate::sys::possible_cpus()?;
    let slots = info.max_entries as usize;
    let per_slot = value_size.div_ceil(8) * 8 * cpus;
    let mut values = vec![0u8; slots * per_slot];
    match read_all(fd.as_raw_fd(), slots, &mut values) {
        Ok(n) => Ok(rows(&values[..n * per_slot], per_slot, cpus)),
        // EINVAL / ENOTSUPP (524): no batch lookups for this map type here.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(524) | Some(libc::EOPNOTSUPP)) => {
            super::Maps::open(bpffs)?.metrics()
        }
        Err(e) => Err(Error::io("bpf_map_lookup_batch", &path, e)),
    }
}

/// Reads every slot of an array into `values` in slot order; returns how
/// many slots were read.
fn read_all(fd: RawFd, slots: usize, values: &mut [u8]) -> std::io::Result<usize> {
    let s = raw::Sizes::of(fd)?;
    let mut keys = vec![0u8; slots * 4];
    let (mut tin, mut tout) = ([0u8; 8], [0u8; 8]);
    let mut done = 0usize;
    let per_slot = values.len() / slots.max(1);
    while done < slots {
        let (n, more) = raw::lookup_batch(
            fd,
            s,
            (done > 0).then_some(&tin[..]),
            &mut tout,
            &mut keys[done * 4..],
            &mut values[done * per_slot..],
            (slots - done) as u32,
        )?;
        // An array's batch walks its slots in order from the first.
        done += n as usize;
        if !more || n == 0 {
            break;
        }
        std::mem::swap(&mut tin, &mut tout);
    }
    Ok(done)
}

/// The slots (reason * 2 + direction) with packets, summed over CPUs.
fn rows(values: &[u8], per_slot: usize, cpus: usize) -> Vec<Metric> {
    let stride = per_slot / cpus.max(1);
    let mut out = Vec::new();
    for (idx, slot) in values.chunks_exact(per_slot).enumerate() {
        let (mut packets, mut bytes) = (0u64, 0u64);
        for cpu in slot.chunks_exact(stride) {
            let p = u64::from_ne_bytes(cpu[0..8].try_into().unwrap_or_default());
            let b = u64::from_ne_bytes(cpu[8..16].try_into().unwrap_or_default());
            // Saturating: counters near the top must not wrap to small numbers when summed.
            packets = packets.saturating_add(p);
            bytes = bytes.saturating_add(b);
        }
        if packets > 0 && idx < abi::METRICS_MAX as usize {
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
    out
}

/// How full one map is: what `cilium_bpf_map_pressure` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFill {
    pub name: &'static str,
    pub entries: u64,
    pub max_entries: u32,
}

impl MapFill {
    /// Entries over capacity: 0 empty, 1 full.
    pub fn pressure(&self) -> f64 {
        if self.max_entries == 0 { 0.0 } else { self.entries as f64 / self.max_entries as f64 }
    }
}

/// The datapath's maps that hold entries (hash, LRU hash, LPM trie), whose
/// fill means something; arrays are always full and event buffers hold no entries.
pub fn entry_maps() -> impl Iterator<Item = &'static str> {
    pins::MAPS.iter().copied().filter(|m| matches!(*m, "endpoints" | "ipcache" | "policy" | "ct4" | "ct6" | "frags"))
}

/// One of [`entry_maps`], open: its id tells whether a count made before
/// is of this map still (a datapath loaded again has new maps).
pub struct EntryMap {
    fd: std::os::fd::OwnedFd,
    pub name: &'static str,
    pub id: u32,
    pub max_entries: u32,
}

impl EntryMap {
    pub fn open(bpffs: &Path, name: &'static str) -> Result<EntryMap> {
        let path = Pins::new(bpffs).map(name);
        let fd = raw::obj_get(&path).map_err(|e| Error::io("bpf_obj_get", &path, e))?;
        let info = raw::map_info(fd.as_raw_fd()).map_err(|e| Error::io("bpf_obj_get_info_by_fd", &path, e))?;
        Ok(EntryMap { fd, name, id: info.id, max_entries: info.max_entries })
    }

    /// The entries it holds, counted with batch lookups where the map type
    /// has them (the LPM trie's keys are walked).
    pub fn count(&self) -> Result<MapFill> {
        let entries = raw::count_entries(self.fd.as_raw_fd())
            .map_err(|e| Error::io("bpf_map_lookup_batch", format!("map {} (id {})", self.name, self.id), e))?;
        Ok(MapFill { name: self.name, entries, max_entries: self.max_entries })
    }
}

/// One program's runs as the kernel counts them while statistics are on
/// (`kernel.bpf_stats_enabled`, or BPF_ENABLE_STATS held by someone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgRuns {
    pub name: &'static str,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// The run counters of the datapath's pinned programs (the kernel-drop
/// program too, where it was loaded).
pub fn prog_runs(bpffs: &Path) -> Result<Vec<ProgRuns>> {
    let pins = Pins::new(bpffs);
    let mut out = Vec::new();
    let kdrop = Some(crate::kdrop::PROG).filter(|p| pins.prog(p).exists());
    for name in [pins::PROG_FROM_ENDPOINT, pins::PROG_TO_ENDPOINT, pins::PROG_TRACE_FROM, pins::PROG_TRACE_TO]
        .into_iter()
        .chain(kdrop)
    {
        let path = pins.prog(name);
        let fd = raw::obj_get(&path).map_err(|e| Error::io("bpf_obj_get", &path, e))?;
        let i = raw::prog_info(fd.as_raw_fd()).map_err(|e| Error::io("bpf_obj_get_info_by_fd", &path, e))?;
        out.push(ProgRuns { name, run_count: i.run_cnt, run_time_ns: i.run_time_ns });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_cpus_and_keep_slots_with_packets() {
        let cpus = 2;
        let per_slot = 16 * cpus;
        let mut v = vec![0u8; per_slot * 4];
        let mut put = |slot: usize, cpu: usize, p: u64, b: u64| {
            let at = slot * per_slot + cpu * 16;
            v[at..at + 8].copy_from_slice(&p.to_ne_bytes());
            v[at + 8..at + 16].copy_from_slice(&b.to_ne_bytes());
        };
        put(0, 0, 2, 200);
        put(0, 1, 3, 300);
        put(3, 1, u64::MAX, 1);
        put(3, 0, 5, 1);
        let r = rows(&v, per_slot, cpus);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].reason, r[0].direction, r[0].packets, r[0].bytes), (0, "ingress", 5, 500));
        assert_eq!((r[1].reason, r[1].direction, r[1].packets), (1, "egress", u64::MAX), "saturates");
    }
}
