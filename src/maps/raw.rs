//! The bpf(2) map commands aya does not expose generically: byte-level key
//! iteration, so any map can be walked whatever its key type.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::MapData;

use crate::{Error, Result};

const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value_or_next: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_long, attr: &mut MapElemAttr) -> io::Result<()> {
    // SAFETY: attr is a valid bpf_attr prefix for the map element commands,
    // and the pointers in it reference live buffers of the sizes the map needs.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut MapElemAttr, std::mem::size_of::<MapElemAttr>()) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Next key after `key` (the first when None); Ok(false) at the end.
pub fn get_next_key(map: &MapData, key: Option<&[u8]>, next: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: map.fd().as_fd().as_raw_fd() as u32,
        _pad: 0,
        key: key.map_or(0, |k| k.as_ptr() as u64),
        value_or_next: next.as_mut_ptr() as u64,
        flags: 0,
    };
    match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Counts the entries of a hash-like map by walking its keys.
pub fn count_entries(map: &MapData, key_size: u32) -> Result<u64> {
    let mut cur = vec![0u8; key_size as usize];
    let mut next = vec![0u8; key_size as usize];
    let mut n = 0u64;
    let mut first = true;
    loop {
        let more = get_next_key(map, (!first).then_some(cur.as_slice()), &mut next)
            .map_err(|e| Error::bpf("bpf_map_get_next_key", e))?;
        if !more {
            return Ok(n);
        }
        n += 1;
        first = false;
        std::mem::swap(&mut cur, &mut next);
    }
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;

/// Looks `key` up into `value` (sized to the map's value size); Ok(false) when absent.
pub fn lookup(map: &MapData, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: map.fd().as_fd().as_raw_fd() as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value_or_next: value.as_mut_ptr() as u64,
        flags: 0,
    };
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}
