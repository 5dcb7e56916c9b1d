//! Kernel drops: packets the kernel frees with a drop reason outside dpdbg's
//! programs, from the `skb:kfree_skb` tracepoint (bpf/kdrop.c).
//!
//! The program is loaded with the datapath (`datapath load`), shares its
//! endpoints map and event buffer through their pins, and is pinned as
//! `progs/kernel_drop`. It starts switched off: every packet the node frees
//! would pay for it. `datapath config kernel-drops=on` attaches it (its
//! raw-tracepoint link pinned as `links/kernel_drop`), `=off` unpins the
//! link and the program stops running.
//!
//! The kernel's struct layouts and its drop reasons come from its own BTF
//! (/sys/kernel/btf/vmlinux, read with `crate::btf`): the offsets of the
//! few sk_buff and net_device fields the program reads are set in its
//! config at load, and reasons are named from `enum skb_drop_reason`.

pub mod reasons;

use std::path::Path;

use aya::EbpfLoader;
use aya::programs::RawTracePoint;
use aya::programs::links::{FdLink, PinnedLink};
use serde::Serialize;

use crate::datapath::{Pins, Settings, Transport};
use crate::{Error, Result, sys};

pub use reasons::{
    EVENT_KERNEL_DROP, F_NETNS, REASON_OTHER, field_offset, host_ifindex, kernel_btf, reason_name, reasons,
};

/// The program's name, and its pin under progs/ and its link's under links/.
pub const PROG: &str = "kernel_drop";
/// The tracepoint it attaches to.
pub const TRACEPOINT: &str = "kfree_skb";

/// The program's `kcfg` (bpf/kdrop.c's struct kdrop_config).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KdropConfig {
    pub event_transport: u32,
    pub snaplen: u32,
    pub skb_dev: u32,
    pub skb_head: u32,
    pub skb_mac_header: u32,
    pub skb_network_header: u32,
    pub skb_protocol: u32,
    pub dev_ifindex: u32,
    pub dev_nd_net: u32,
    pub net_inum: u32,
    pub not_drop: u32,
    pub all: u32,
    /// The loader's network namespace (inode number of /proc/self/ns/net), 0 unknown.
    pub host_netns: u32,
    /// Offset of sk_buff.tail: the end of the linear data (an offset from
    /// head on 64-bit kernels), past which a capture must not read.
    pub skb_tail: u32,
}

// SAFETY: repr(C) u32s only, no padding.
unsafe impl aya::Pod for KdropConfig {}

/// This process's network namespace, by its inode number.
fn host_netns() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net").ok().and_then(|m| u32::try_from(m.ino()).ok())
}

/// The config for the running kernel: its field offsets, SKB_CONSUMED.
pub fn config(settings: &Settings) -> std::result::Result<KdropConfig, String> {
    let btf = kernel_btf()?;
    let off = |st: &str, f: &str| {
        field_offset(btf, st, f).ok_or_else(|| format!("no field {f} in struct {st} of the kernel's BTF"))
    };
    Ok(KdropConfig {
        event_transport: if settings.transport == Transport::Perf {
            crate::abi::TRANSPORT_PERF
        } else {
            crate::abi::TRANSPORT_RINGBUF
        },
        snaplen: settings.snaplen,
        skb_dev: off("sk_buff", "dev")?,
        skb_head: off("sk_buff", "head")?,
        skb_mac_header: off("sk_buff", "mac_header")?,
        skb_network_header: off("sk_buff", "network_header")?,
        skb_protocol: off("sk_buff", "protocol")?,
        dev_ifindex: off("net_device", "ifindex")?,
        dev_nd_net: off("net_device", "nd_net")?,
        net_inum: off("net", "ns")? + off("ns_common", "inum")?,
        not_drop: reasons().iter().find(|(_, n)| n.as_str() == "CONSUMED").map_or(1, |(v, _)| *v),
        all: 0,
        host_netns: host_netns().unwrap_or(0),
        skb_tail: off("sk_buff", "tail")?,
    })
}

/// Where kernel drops stand on a datapath.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KernelDrops {
    /// on, off (switched off at run time), or unavailable (not loaded).
    pub state: &'static str,
    pub detail: String,
}

/// Whether the kernel has the tracepoint, from its BTF.
pub fn tracepoint_available() -> std::result::Result<(), String> {
    let btf = kernel_btf()?;
    if btf.ids_by_name(&format!("btf_trace_{TRACEPOINT}")).is_empty() {
        return Err(format!("this kernel has no skb:{TRACEPOINT} tracepoint"));
    }
    Ok(())
}

fn link_pin(pins: &Pins) -> std::path::PathBuf {
    pins.root().join("links").join(PROG)
}

/// The state on the datapath under `bpffs`.
pub fn state(bpffs: &Path) -> KernelDrops {
    let pins = Pins::new(bpffs);
    if link_pin(&pins).exists() {
        KernelDrops { state: "on", detail: format!("skb:{TRACEPOINT} attached") }
    } else if pins.prog(PROG).exists() {
        KernelDrops { state: "off", detail: "switched off (`dpdbg datapath config kernel-drops=on`)".into() }
    } else {
        let why = match tracepoint_available() {
            Err(e) => e,
            Ok(()) => format!(
                "the program is not loaded (the load could not attach it to skb:{TRACEPOINT}: see what `dpdbg datapath load` said)"
            ),
        };
        KernelDrops { state: "unavailable", detail: why }
    }
}

fn attach(pins: &Pins, prog: &mut RawTracePoint) -> Result<()> {
    let what = || format!("attaching {PROG} to skb:{TRACEPOINT}");
    let id = prog.attach(TRACEPOINT).map_err(|e| Error::bpf(what(), e))?;
    let link: FdLink = prog.take_link(id).map_err(|e| Error::bpf(what(), e))?.into();
    let path = link_pin(pins);
    link.pin(&path).map_err(|e| Error::bpf(format!("pinning {}", path.display()), e))?;
    Ok(())
}

/// Loads the program beside a datapath just pinned under `pins` and pins
/// it, attached when `on` (else `datapath config kernel-drops=on` attaches
/// it). The datapath's maps must be pinned already.
pub fn load(pins: &Pins, settings: &Settings, on: bool) -> Result<()> {
    tracepoint_available().map_err(Error::InvalidInput)?;
    let cfg = config(settings).map_err(Error::InvalidInput)?;
    let paths: Vec<(&str, std::path::PathBuf)> =
        ["endpoints", "metrics", "events", "events_perf"].iter().map(|m| (*m, pins.map(m))).collect();
    let mut loader = EbpfLoader::new();
    loader.override_global("kcfg", &cfg, true);
    for (name, path) in &paths {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader.load(crate::KDROP_OBJECT).map_err(|e| Error::bpf("loading the kernel-drop program", e))?;
    let prog: &mut RawTracePoint = ebpf
        .program_mut(PROG)
        .ok_or_else(|| Error::InvalidInput(format!("the kernel-drop object has no program {PROG}")))?
        .try_into()
        .map_err(|e| Error::bpf(format!("program {PROG}"), e))?;
    prog.load().map_err(|e| Error::bpf(format!("loading {PROG}"), e))?;
    let path = pins.prog(PROG);
    prog.pin(&path).map_err(|e| Error::bpf(format!("pinning {}", path.display()), e))?;
    if on { attach(pins, prog) } else { Ok(()) }
}

/// Switches kernel drops on or off on a loaded datapath; returns whether
/// they were on before.
pub fn set(bpffs: &Path, on: bool) -> Result<bool> {
    sys::require_privileges("switching kernel drops")?;
    let pins = Pins::new(bpffs);
    pins.require_loaded()?;
    let link = link_pin(&pins);
    let was = link.exists();
    if on && !was {
        let path = pins.prog(PROG);
        if !path.exists() {
            return Err(Error::InvalidInput(format!("kernel drops are unavailable: {}", state(bpffs).detail)));
        }
        let mut prog =
            RawTracePoint::from_pin(&path).map_err(|e| Error::bpf(format!("opening {}", path.display()), e))?;
        attach(&pins, &mut prog)?;
    } else if !on && was {
        let l = PinnedLink::from_pin(&link).map_err(|e| Error::bpf(format!("opening {}", link.display()), e))?;
        // Unpinned, the link goes with its last fd: the program stops running.
        drop(l.unpin().map_err(|e| Error::io("unpin", &link, e))?);
    }
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_btf_gives_offsets_and_reason_names() {
        let btf = kernel_btf().expect("this machine has kernel BTF");
        let head = field_offset(btf, "sk_buff", "head").unwrap();
        let nh = field_offset(btf, "sk_buff", "network_header").unwrap();
        assert!(head > 0 && nh > 0 && head != nh);
        assert!(field_offset(btf, "sk_buff", "no_such_field").is_none());
        assert_eq!(std::mem::size_of::<KdropConfig>(), 14 * 4);
        assert!(host_netns().is_some_and(|n| n > 0));
        assert!(field_offset(btf, "ns_common", "inum").is_some());
        let r = reasons();
        assert_eq!(r.get(&2).map(String::as_str), Some("NOT_SPECIFIED"));
        let no_socket = r.iter().find(|(_, n)| n.as_str() == "NO_SOCKET").map(|(v, _)| *v).unwrap();
        assert_eq!(reason_name(no_socket as u8), "NO_SOCKET");
        assert_eq!(reason_name(REASON_OTHER), "OTHER (a subsystem's reason)");
        tracepoint_available().unwrap();
    }
}
