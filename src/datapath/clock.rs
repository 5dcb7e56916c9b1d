//! Relates jiffies to CLOCK_MONOTONIC_COARSE for the datapath.
//!
//! The datapath stamps conntrack entries on every packet. The coarse clock
//! helper costs more there than a hash lookup, while `bpf_jiffies64()` is
//! inlined by the verifier into one load. So the datapath reads jiffies and
//! scales them to coarse nanoseconds with two numbers the loader measures
//! here once, through the object's own `clock_probe` program: user space and
//! the conntrack entries keep speaking CLOCK_MONOTONIC_COARSE.

use std::time::{Duration, Instant};

use aya::Ebpf;
use aya::maps::{Map, MapData};
use aya::programs::{SchedClassifier, TestRun, TestRunOptions};

use super::status::global_offset_in;
use crate::abi::{ClockSample, DpClock};
use crate::syscall as raw;
use crate::{Error, Result};

/// Tick lengths of the kernel's possible HZ values (1000, 300, 250, 100).
const TICK_NS: [u64; 4] = [1_000_000, 3_333_333, 4_000_000, 10_000_000];

fn map_data<'a>(ebpf: &'a Ebpf, section: &str) -> Result<&'a MapData> {
    match ebpf.map(section) {
        Some(Map::Array(m)) => Ok(m),
        _ => Err(Error::InvalidInput(format!("the datapath object has no {section} array"))),
    }
}

fn read_section(m: &MapData, what: &str) -> Result<Vec<u8>> {
    let info = m.info().map_err(|e| Error::bpf(format!("reading {what}"), e))?;
    let mut value = vec![0u8; info.value_size() as usize];
    raw::lookup(m, &0u32.to_ne_bytes(), &mut value).map_err(|e| Error::bpf(format!("reading {what}"), e))?;
    Ok(value)
}

fn var_offset<T>(object: &[u8], section: &str, var: &str, len: usize) -> Result<usize> {
    let off = global_offset_in(object, section, var)
        .ok_or_else(|| Error::InvalidInput(format!("no global {var} in {section} of the object's BTF")))?;
    if off + std::mem::size_of::<T>() > len {
        return Err(Error::InvalidInput(format!("{section} is {len} bytes, too short for {var}")));
    }
    Ok(off)
}

/// Measures the relation and writes it into the object's `clk` global.
/// When it cannot be measured (no tick seen in time), `clk` stays zero and
/// the datapath falls back to the coarse clock helper: slower, still right.
pub(super) fn calibrate(ebpf: &mut Ebpf, object: &[u8]) -> Result<()> {
    let sample = {
        let missing = || Error::InvalidInput("the datapath object has no clock_probe program".into());
        let prog: &mut SchedClassifier = ebpf
            .program_mut("clock_probe")
            .ok_or_else(missing)?
            .try_into()
            .map_err(|e| Error::bpf("program clock_probe", e))?;
        prog.load().map_err(|e| Error::bpf("loading clock_probe", e))?;
        let prog: &SchedClassifier = ebpf
            .program("clock_probe")
            .ok_or_else(missing)?
            .try_into()
            .map_err(|e| Error::bpf("program clock_probe", e))?;
        let packet = [0u8; 64];
        let run = || -> Result<()> {
            let mut o = TestRunOptions::new();
            o.data_in = Some(&packet);
            prog.test_run(o).map_err(|e| Error::bpf("running clock_probe", e))?;
            Ok(())
        };
        let bss = map_data(ebpf, ".bss")?;
        let read = || -> Result<ClockSample> {
            let v = read_section(bss, "clock_sample")?;
            let off = var_offset::<ClockSample>(object, ".bss", "clock_sample", v.len())?;
            // SAFETY: ClockSample is two u64s and the slice holds its size.
            Ok(unsafe { std::ptr::read_unaligned(v[off..].as_ptr().cast()) })
        };
        // Both clocks move together at a tick: take the first reading after
        // one tick and after the next, so the interval between them is whole ticks.
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut edges = Vec::with_capacity(2);
        run()?;
        let mut last = read()?;
        while edges.len() < 2 && Instant::now() < deadline {
            run()?;
            let s = read()?;
            if s.jiffies != last.jiffies {
                edges.push(s);
            }
            last = s;
        }
        if edges.len() < 2 {
            return Ok(());
        }
        (edges[0], edges[1])
    };
    let (a, b) = sample;
    let ticks = b.jiffies.wrapping_sub(a.jiffies).max(1);
    let per_tick = b.coarse_ns.saturating_sub(a.coarse_ns) / ticks;
    let Some(&ns_per_jiffy) = TICK_NS.iter().min_by_key(|t| t.abs_diff(per_tick)) else { return Ok(()) };
    if ns_per_jiffy.abs_diff(per_tick) > ns_per_jiffy / 4 {
        // Not one of the tick lengths a kernel has: keep the helper.
        return Ok(());
    }
    let clk =
        DpClock { ns_per_jiffy, offset_ns: b.coarse_ns.wrapping_sub(b.jiffies.wrapping_mul(ns_per_jiffy)) as i64 };
    let data = map_data(ebpf, ".data")?;
    let mut value = read_section(data, ".data")?;
    let off = var_offset::<DpClock>(object, ".data", "clk", value.len())?;
    // SAFETY: DpClock is repr(C) integers; the slot is exactly its size.
    let bytes =
        unsafe { std::slice::from_raw_parts((&clk as *const DpClock).cast::<u8>(), std::mem::size_of::<DpClock>()) };
    value[off..off + bytes.len()].copy_from_slice(bytes);
    raw::update(data, &0u32.to_ne_bytes(), &value, 0).map_err(|e| Error::bpf("writing the clock calibration", e))
}
