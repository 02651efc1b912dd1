//! The API's listening sockets (TCP with a deep backlog, and the private Unix socket) and the
//! accept loop, which admits each connection into the table ([`super::conns`]) and spawns its
//! task ([`super::http`]).

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::time::Instant;

use super::conns::{ConnTable, Origin};
use super::http::{serve, Client, Handler, Limits, ACCEPT_BATCH, LISTEN_BACKLOG};

/// The Unix socket's file: removed when the server stops, if it is still this server's.
#[derive(Debug)]
pub(crate) struct UnixSocketFile {
    path: PathBuf,
    ino: u64,
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds the Unix socket at `path`, mode 0600 (its parent directory is created if needed).
/// A socket file left by a farmd that is gone is replaced; one that still accepts
/// connections means another farmd runs (`AddrInUse`); any other file is left alone.
pub(crate) fn bind_unix(path: &Path) -> io::Result<(std::os::unix::net::UnixListener, UnixSocketFile)> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).ok_or_else(|| invalid(format!("{}: no directory", path.display())))?;
    let name = path.file_name().ok_or_else(|| invalid(format!("{}: no file name", path.display())))?;
    std::fs::create_dir_all(dir)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match super::client::probe_unix(path) {
            super::client::Probe::Absent => std::fs::remove_file(path)?,
            _ => return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{}: another farmd listens there", path.display()))),
        },
        Ok(_) => return Err(invalid(format!("{}: exists and is not a socket", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Bound under a temporary name, made private, then renamed into place: the socket is
    // never reachable at its path with the umask's mode.
    let tmp = dir.join(format!(".{}.{}", name.to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    listener.set_nonblocking(true)?;
    let ino = std::fs::symlink_metadata(path)?.ino();
    Ok((listener, UnixSocketFile { path: path.to_path_buf(), ino }))
}

pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(LISTEN_BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The accept loop's state.
pub(super) struct Acceptor {
    pub(super) handler: Arc<dyn Handler>,
    pub(super) limits: Limits,
    pub(super) builder: http1::Builder,
    pub(super) table: ConnTable,
    /// Peers allowed on the Unix socket: root and this uid.
    pub(super) own_uid: u32,
}

impl Acceptor {
    fn tcp(&self, stream: TcpStream, peer: SocketAddr) {
        let Some(slot) = self.table.admit(Origin::tcp(peer.ip())) else {
            tracing::debug!(%peer, "API: connection refused, every connection in its way is busy");
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            return;
        };
        let _ = stream.set_nodelay(true);
        let client = Client { peer: Some(peer), unix: false };
        tokio::spawn(serve(stream, client, self.handler.clone(), self.limits, self.builder.clone(), slot, Instant::now()));
    }

    fn unix(&self, stream: UnixStream) {
        match stream.peer_cred() {
            Ok(c) if c.uid() == 0 || c.uid() == self.own_uid => {}
            Ok(c) => {
                tracing::warn!(uid = c.uid(), "API: Unix socket connection from a user other than root refused");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "API: Unix socket peer unknown, connection refused");
                return;
            }
        }
        let Some(slot) = self.table.admit(Origin::Unix) else {
            tracing::debug!("API: Unix socket connection refused, every connection is busy");
            return;
        };
        let client = Client { peer: None, unix: true };
        tokio::spawn(serve(stream, client, self.handler.clone(), self.limits, self.builder.clone(), slot, Instant::now()));
    }

    async fn error(&self, e: io::Error) {
        // EMFILE, ENFILE: free a descriptor by evicting an idle connection, and do not spin.
        if matches!(e.raw_os_error(), Some(nix::libc::EMFILE | nix::libc::ENFILE)) {
            let evicted = self.table.evict_idle_tcp();
            tracing::warn!(error = %e, evicted, "API: out of file descriptors");
            tokio::time::sleep(Duration::from_millis(if evicted { 1 } else { 10 })).await;
        } else {
            tracing::debug!(error = %e, "API accept error");
        }
    }
}

async fn accept_unix(l: Option<&UnixListener>) -> io::Result<UnixStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

pub(super) async fn accept_loop(tcp: TcpListener, unix: Option<UnixListener>, acceptor: Acceptor) {
    let mut batch = 0;
    loop {
        tokio::select! {
            r = tcp.accept() => match r {
                Ok((stream, peer)) => acceptor.tcp(stream, peer),
                Err(e) => acceptor.error(e).await,
            },
            r = accept_unix(unix.as_ref()) => match r {
                Ok(stream) => acceptor.unix(stream),
                Err(e) => acceptor.error(e).await,
            },
        }
        batch += 1;
        if batch >= ACCEPT_BATCH {
            // Let the connections just accepted read their requests before more are
            // accepted (each may evict the oldest idle one).
            batch = 0;
            tokio::task::yield_now().await;
        }
    }
}
