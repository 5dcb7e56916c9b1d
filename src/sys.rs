//! Small system facts the core needs: privileges, bpffs, interfaces, clocks.

use std::ffi::{CStr, CString};
use std::io;
use std::path::Path;

use crate::{Error, Result};

const BPF_FS_MAGIC: i64 = 0xcafe4a11;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Effective capability bits of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Fails with a clear message unless the process may load BPF and change links.
pub fn require_privileges(what: &str) -> Result<()> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1 << c) != 0;
    if (has(CAP_BPF) || has(CAP_SYS_ADMIN)) && has(CAP_NET_ADMIN) {
        Ok(())
    } else {
        Err(Error::NotPrivileged { what: what.to_string() })
    }
}

/// Whether `path` is the root of a bpf filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid C string and st is written by the kernel.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Fails with the mount command to run when `path` is not a bpffs.
pub fn require_bpffs(path: &Path) -> Result<()> {
    if is_bpffs(path) { Ok(()) } else { Err(Error::BpffsNotMounted { path: path.to_path_buf() }) }
}

/// Mounts a fresh bpffs instance at `path` (a test's or the lab's own).
pub fn mount_bpffs(path: &Path) -> Result<()> {
    let target = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidInput(format!("bad path {}", path.display())))?;
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let r = unsafe { libc::mount(c"bpf".as_ptr(), target.as_ptr(), c"bpf".as_ptr(), 0, std::ptr::null()) };
    if r != 0 {
        return Err(Error::io("mount -t bpf", path, io::Error::last_os_error()));
    }
    Ok(())
}

/// Unmounts `path`; lazy so a straggling fd does not make clean-up fail.
pub fn unmount(path: &Path) -> Result<()> {
    let target = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::InvalidInput(format!("bad path {}", path.display())))?;
    // SAFETY: target is a valid C string.
    let r = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    if r != 0 {
        return Err(Error::io("umount", path, io::Error::last_os_error()));
    }
    Ok(())
}

/// The ifindex of a network interface in this network namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c = CString::new(name).map_err(|_| Error::NoSuchInterface { name: name.to_string() })?;
    // SAFETY: c is a valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 { Err(Error::NoSuchInterface { name: name.to_string() }) } else { Ok(idx) }
}

/// The name of the interface with this ifindex, if it still exists.
pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes as the call requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// CLOCK_MONOTONIC_COARSE in ns: the clock conntrack times are kept in.
pub fn monotonic_coarse_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// CLOCK_MONOTONIC in ns: the clock event timestamps are taken from.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Number of possible CPUs (the per-CPU map value count).
pub fn possible_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(path, e)| Error::io("read", path, e))
}

/// What the running kernel offers the datapath, probed once.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Features {
    pub kernel: String,
    /// TCX links (6.6+): attachments that are BPF links and can be pinned.
    pub tcx: bool,
    /// BPF ring buffer (5.8+).
    pub ringbuf: bool,
}

pub fn features() -> Features {
    use aya::util::KernelVersion;
    let v = KernelVersion::current().ok();
    let at_least = |a, b| v.is_some_and(|v| v >= KernelVersion::new(a, b, 0));
    Features {
        kernel: v.map(|v| v.to_string()).unwrap_or_else(|| "unknown".into()),
        tcx: at_least(6, 6),
        ringbuf: at_least(5, 8),
    }
}

/// The size of a memory page in bytes.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

/// An exclusive flock on a directory, held while the value lives.
/// (bpffs holds no regular files, but its directories take flocks.)
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code)] std::fs::File);

/// Why a directory lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it (its pid, from /proc/locks, or "unknown").
    Busy {
        holder: String,
    },
    Io(std::io::Error),
}

/// Takes an exclusive flock on `dir`, waiting up to `wait` for its holder.
pub fn lock_dir(dir: &Path, wait: std::time::Duration) -> std::result::Result<DirLock, LockError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY).open(dir).map_err(LockError::Io)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        // SAFETY: f is an open fd for the duration of the call.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(DirLock(f));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(LockError::Io(e));
        }
        if std::time::Instant::now() >= deadline {
            return Err(LockError::Busy { holder: lock_holder(dir) });
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The pid holding a flock on `dir`, from /proc/locks, for error messages.
pub fn lock_holder(dir: &Path) -> String {
    lock_holder_pid(dir).unwrap_or_else(|| "unknown".into())
}

/// The pid holding a flock on `dir`, if any (None also when /proc/locks
/// cannot be read). The device is matched as well as the inode: every bpffs
/// mount's root has the same inode number.
pub fn lock_holder_pid(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(dir).ok()?;
    // /proc/locks prints MAJOR:MINOR:INODE, the device numbers in hex.
    let want = format!("{:02x}:{:02x}:{}", libc::major(md.dev()), libc::minor(md.dev()), md.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks
        .lines()
        .find(|line| line.contains("FLOCK") && line.split_whitespace().nth(5) == Some(want.as_str()))
        .and_then(|line| line.split_whitespace().nth(4).map(str::to_string))
}

/// Checks an interface name against the kernel's rules (dev_valid_name)
/// before it is used in a path: 1 to 15 bytes, not "." or "..", no '/',
/// ':' or white space.
pub fn check_ifname(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if bad {
        return Err(Error::InvalidInput(format!(
            "{name:?} is not an interface name: 1 to 15 bytes, not \".\" or \"..\", without '/', ':' or spaces"
        )));
    }
    Ok(())
}

/// Nanoseconds to add to a CLOCK_MONOTONIC stamp (the datapath's event
/// times) for wall-clock time since the epoch; negative when the wall clock
/// is set before boot.
pub fn wall_offset_ns() -> i128 {
    let wall = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    wall - monotonic_ns() as i128
}
