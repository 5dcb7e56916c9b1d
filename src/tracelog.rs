//! The kernel's trace pipe, where `bpf_printk` writes (`bpftool prog
//! tracelog`): tracefs is mounted where it is not, and lines are handed out
//! as they come, parsed into their parts.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::{Error, Result, sys};

const TRACEFS_MAGIC: i64 = 0x74726163;
const DEBUGFS_MAGIC: i64 = 0x64626720;

fn fs_type(path: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: c is a valid C string and st is written by the kernel.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        (libc::statfs(c.as_ptr(), &mut st) == 0).then_some(st.f_type as i64)
    }
}

/// Where tracefs is, mounting it at /sys/kernel/tracing when it is nowhere
/// (what bpftool does too). Returns the directory and whether it was mounted now.
pub fn tracefs() -> Result<(PathBuf, bool)> {
    let main = Path::new("/sys/kernel/tracing");
    if fs_type(main) == Some(TRACEFS_MAGIC) {
        return Ok((main.to_path_buf(), false));
    }
    let old = Path::new("/sys/kernel/debug/tracing");
    if fs_type(Path::new("/sys/kernel/debug")) == Some(DEBUGFS_MAGIC) && fs_type(old) == Some(TRACEFS_MAGIC) {
        return Ok((old.to_path_buf(), false));
    }
    sys::require_privileges("mounting tracefs")?;
    let target = c"/sys/kernel/tracing";
    // SAFETY: all pointers are valid NUL-terminated strings for the call's duration.
    let r = unsafe { libc::mount(c"tracefs".as_ptr(), target.as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null()) };
    if r != 0 {
        return Err(Error::io("mount -t tracefs", main, std::io::Error::last_os_error()));
    }
    Ok((main.to_path_buf(), true))
}

/// One line of the trace pipe: `task-pid [cpu] flags timestamp: function: message`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceLine {
    pub task: String,
    pub pid: u32,
    pub cpu: u32,
    pub flags: String,
    /// Seconds since boot, as the trace clock prints them.
    pub timestamp: f64,
    /// `bpf_trace_printk` for bpf_printk, else the event's name.
    pub function: String,
    pub message: String,
    /// The line as the kernel wrote it.
    pub raw: String,
}

/// Parses one trace pipe line; None for a line that is not in the usual
/// shape (it is then handed out raw by the reader's caller).
pub fn parse_line(line: &str) -> Option<TraceLine> {
    let t = line.trim_start();
    let open = t.find(" [")?;
    let close = open + t[open..].find(']')?;
    let (task, pid) = t[..open].trim_end().rsplit_once('-')?;
    let cpu = t[open + 2..close].trim().parse().ok()?;
    let rest = t[close + 1..].trim_start();
    let (flags, rest) = rest.split_once(' ').unwrap_or(("", rest));
    let rest = rest.trim_start();
    let (ts, rest) = rest.split_once(": ")?;
    let (function, message) = rest.split_once(": ").unwrap_or((rest.trim_end_matches(':'), ""));
    Some(TraceLine {
        task: task.to_string(),
        pid: pid.parse().ok()?,
        cpu,
        flags: flags.to_string(),
        timestamp: ts.trim().parse().ok()?,
        function: function.to_string(),
        message: message.to_string(),
        raw: line.to_string(),
    })
}

/// Whether a line is the datapath's own: a bpf_printk whose message starts `dpdbg:`.
pub fn is_datapath(l: &TraceLine) -> bool {
    l.function == "bpf_trace_printk" && l.message.starts_with("dpdbg:")
}

/// The trace pipe, open; reading takes lines out of the kernel's buffer.
pub struct TracePipe {
    file: File,
    pending: Vec<u8>,
    pub path: PathBuf,
    /// tracefs was mounted for this reader.
    pub mounted: bool,
}

impl TracePipe {
    pub fn open() -> Result<TracePipe> {
        let (dir, mounted) = tracefs()?;
        let path = dir.join("trace_pipe");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok(TracePipe { file, pending: Vec::new(), path, mounted })
    }

    /// Waits up to `timeout` for lines and hands each whole one to `f`.
    pub fn read(&mut self, timeout: Duration, mut f: impl FnMut(&str)) -> Result<()> {
        let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: pfd is one valid pollfd for the call.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(Error::io("poll", &self.path, e))
            };
        }
        let mut buf = [0u8; 16384];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => break,
                Err(e) => return Err(Error::io("read", &self.path, e)),
            }
        }
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|b| *b == b'\n') {
            f(&String::from_utf8_lossy(&self.pending[start..start + nl]));
            start += nl + 1;
        }
        self.pending.drain(..start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_pipe_lines() {
        let l = parse_line(
            "          <idle>-0       [001] ..s21  1234.567890: bpf_trace_printk: dpdbg: drop reason 133 ifindex 7",
        )
        .unwrap();
        assert_eq!((l.task.as_str(), l.pid, l.cpu, l.flags.as_str()), ("<idle>", 0, 1, "..s21"));
        assert_eq!(l.timestamp, 1234.56789);
        assert_eq!(l.function, "bpf_trace_printk");
        assert_eq!(l.message, "dpdbg: drop reason 133 ifindex 7");
        assert!(is_datapath(&l));
        let l = parse_line("     ping-4242    [000] b..1.    99.000001: bpf_trace_printk: hello").unwrap();
        assert_eq!((l.task.as_str(), l.pid), ("ping", 4242));
        assert!(!is_datapath(&l));
        let l = parse_line("  kworker/u4:2-77 [001] d..1. 5.5: some_event: a: b").unwrap();
        assert_eq!((l.task.as_str(), l.function.as_str(), l.message.as_str()), ("kworker/u4:2", "some_event", "a: b"));
        assert!(parse_line("CPU:1 [LOST 3 EVENTS]").is_none());
    }
}
