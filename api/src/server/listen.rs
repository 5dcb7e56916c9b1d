//! Listeners: the unix socket's file, made safe before anyone can connect.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use super::ServeError;

/// Binds the unix socket at `path`, group-accessible (0660), never
/// world-accessible, not even for a moment: the socket file is created
/// under a umask that leaves it 0660 whatever the caller's umask was (a
/// chmod after bind left a window in which anyone could connect under
/// `umask 000`). A file at `path` that is not a socket is refused, never
/// deleted; a socket nobody answers on is a stale one, replaced.
///
/// The umask is process-wide: this runs before the server starts any
/// thread that creates files, and a file created meanwhile would only get
/// a stricter mode.
pub(super) fn bind_unix(path: &Path, gid: Option<u32>) -> Result<tokio::net::UnixListener, ServeError> {
    let io = |what: &str, e| ServeError::Io { what: format!("{what} {}", path.display()), source: e };
    refuse_non_socket(path)?;
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io("binding", std::io::Error::from(std::io::ErrorKind::AddrInUse)));
        }
        std::fs::remove_file(path).map_err(|e| io("removing the stale socket", e))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
    }
    // SAFETY: umask has no preconditions; the old mask is put back right after.
    let old = unsafe { libc::umask(0o117) };
    let bound = tokio::net::UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = bound.map_err(|e| io("binding", e))?;
    // Already 0660; said again for filesystems that ignore the umask.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| io("chmod", e))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| io("chown", e))?;
    }
    Ok(l)
}

/// An error when something other than a socket is at `path`.
pub(super) fn refuse_non_socket(path: &Path) -> Result<(), ServeError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => Err(ServeError::NotASocket { path: path.to_path_buf() }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_socket_is_never_there_with_a_mode_others_may_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        // SAFETY: umask has no preconditions; the old mask is put back below.
        let old = unsafe { libc::umask(0) };
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (path, stop) = (path.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path) {
                        seen.insert(m.permissions().mode() & 0o777);
                    }
                }
                seen
            })
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for _ in 0..300 {
            let l = rt.block_on(async { bind_unix(&path, None) }).unwrap();
            drop(l);
            std::fs::remove_file(&path).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let seen = watcher.join().unwrap();
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        assert!(!seen.is_empty(), "the watcher saw the socket");
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0o660], "modes seen at the socket's path");
    }

    #[test]
    fn a_file_that_is_not_a_socket_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        std::fs::write(&path, "precious").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let e = rt.block_on(async { bind_unix(&path, None) }).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    }
}
