//! dpdbg's core: load, attach and pin the datapath, read and change its maps,
//! read its events, and run the built-in lab. No printing and no CLI here:
//! the `dpdbg` binary (commands/) and the dashboard (tui/) render what this
//! library returns.

pub mod abi;
pub mod btf;
pub mod datapath;
pub mod error;
pub mod events;
pub mod explain;
pub mod flow;
pub mod kdrop;
pub mod lab;
pub mod maps;
pub mod pins;
pub mod progs;
pub mod replay;
pub mod snapshot;
pub mod sys;
pub(crate) mod syscall;
pub mod trace;
pub mod tracelog;
pub mod verdict;
pub mod words;
pub mod xlated;

pub use error::{Error, Result};

/// The compiled datapath object (bpf/datapath.c, with BTF), built by build.rs.
pub static DATAPATH_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/datapath.o"));

/// The kernel-drop program (bpf/kdrop.c), loaded beside the datapath.
pub static KDROP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/kdrop.o"));

/// Test fixture objects compiled from bpf/test/ (not used by dpdbg itself).
#[doc(hidden)]
pub mod test_objects {
    /// Maps with varied BTF (bpf/test/btf_maps.c), for tests to load with bpftool.
    pub static BTF_MAPS: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/btf_maps.o"));
}
