//! Entries added, removed and changed between two reads of any map, for
//! `dpdbg map watch`. Each read is one batch walk into two flat buffers; the
//! diff checks the entry at the same place in the last read first (a hash
//! map read twice comes back in the same order while it is unchanged) and
//! hashes keys only where the order moved.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::any::{AnyMap, MapSpec};
use crate::Result;

/// One read of a map: keys and values back to back.
#[derive(Default)]
struct Table {
    keys: Vec<u8>,
    values: Vec<u8>,
    n: usize,
    ks: usize,
    vs: usize,
}

impl Table {
    fn read(m: &AnyMap) -> Result<Table> {
        let (ks, vs) = (m.info.key_size as usize, m.value_buf_size());
        let mut t = Table { ks, vs, ..Table::default() };
        m.for_each_batch(|k, v, n| {
            t.keys.extend_from_slice(&k[..n * ks]);
            t.values.extend_from_slice(&v[..n * vs]);
            t.n += n;
            Ok(())
        })?;
        Ok(t)
    }

    fn key(&self, i: usize) -> &[u8] {
        &self.keys[i * self.ks..(i + 1) * self.ks]
    }

    fn value(&self, i: usize) -> &[u8] {
        &self.values[i * self.vs..(i + 1) * self.vs]
    }
}

/// One difference between two reads.
#[derive(Debug, PartialEq, Eq)]
pub enum Change<'a> {
    Added { key: &'a [u8], value: &'a [u8] },
    Removed { key: &'a [u8], value: &'a [u8] },
    Changed { key: &'a [u8], old: &'a [u8], new: &'a [u8] },
}

/// What one interval found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    pub added: u64,
    pub removed: u64,
    pub changed: u64,
    /// Entries in the map now.
    pub entries: u64,
    /// The map under the name or pin is another one now: (old id, new id).
    pub replaced: Option<(u32, u32)>,
    /// The name or pin named no map this time (between an unpin and a new
    /// pin, say): why. Nothing was compared; the next tick compares
    /// whatever comes back with the last read.
    pub absent: Option<String>,
}

/// A map read again and again; each [`Watch::tick`] reports what changed.
pub struct Watch {
    spec: MapSpec,
    bpffs: PathBuf,
    map: AnyMap,
    last: Table,
}

impl Watch {
    /// Opens the map and takes the first read, against which the first tick compares.
    pub fn new(spec: MapSpec, bpffs: &Path) -> Result<Watch> {
        let map = AnyMap::open(&spec, bpffs)?;
        map.check_iterable()?;
        let last = Table::read(&map)?;
        Ok(Watch { spec, bpffs: bpffs.to_path_buf(), map, last })
    }

    /// The map as last opened (its BTF decodes what `tick` hands out).
    pub fn map(&self) -> &AnyMap {
        &self.map
    }

    /// Reads the map again (opened anew: a name or pin may point at another
    /// map now) and hands every change since the last read to `f`.
    pub fn tick(&mut self, mut f: impl FnMut(Change)) -> Result<Tick> {
        let mut tick = Tick::default();
        let now = match AnyMap::open(&self.spec, &self.bpffs) {
            Ok(m) => m,
            Err(e) => {
                tick.absent = Some(e.to_string());
                tick.entries = self.last.n as u64;
                return Ok(tick);
            }
        };
        if now.info.id != self.map.info.id {
            tick.replaced = Some((self.map.info.id, now.info.id));
            let same_layout = now.info.key_size == self.map.info.key_size
                && now.value_buf_size() == self.map.value_buf_size()
                && now.info.map_type == self.map.info.map_type;
            // A different layout cannot be compared entry by entry: all of it is new.
            if !same_layout {
                self.last = Table::default();
            }
            self.map = now;
        }
        let next = Table::read(&self.map)?;
        let last = &self.last;
        let mut seen = vec![false; last.n];
        let mut index: Option<HashMap<&[u8], usize>> = None;
        for i in 0..next.n {
            let key = next.key(i);
            let at = if i < last.n && last.key(i) == key {
                Some(i)
            } else {
                index.get_or_insert_with(|| (0..last.n).map(|j| (last.key(j), j)).collect()).get(key).copied()
            };
            match at {
                Some(j) => {
                    seen[j] = true;
                    if last.value(j) != next.value(i) {
                        tick.changed += 1;
                        f(Change::Changed { key, old: last.value(j), new: next.value(i) });
                    }
                }
                None => {
                    tick.added += 1;
                    f(Change::Added { key, value: next.value(i) });
                }
            }
        }
        for (j, _) in seen.iter().enumerate().filter(|(_, s)| !**s) {
            tick.removed += 1;
            f(Change::Removed { key: last.key(j), value: last.value(j) });
        }
        tick.entries = next.n as u64;
        self.last = next;
        Ok(tick)
    }
}
