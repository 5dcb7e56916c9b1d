//! Listeners: the unix socket's file, made safe before anyone can connect.

use std::path::Path;

use super::ServeError;

/// Binds the unix socket: the old file goes only when nothing answers on it,
/// then the socket is made group-accessible (0660), never world-accessible.
pub(super) fn bind_unix(path: &Path, gid: Option<u32>) -> Result<tokio::net::UnixListener, ServeError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |what: &str, e| ServeError::Io { what: format!("{what} {}", path.display()), source: e };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io("binding", std::io::Error::from(std::io::ErrorKind::AddrInUse)));
        }
        std::fs::remove_file(path).map_err(|e| io("removing the stale socket", e))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
    }
    let l = tokio::net::UnixListener::bind(path).map_err(|e| io("binding", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| io("chmod", e))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| io("chown", e))?;
    }
    Ok(l)
}
