//! Closing an API connection: a second descriptor of its socket ([`Spare`]) outlives hyper's,
//! so that after the answer farmd can half-close and drain what the client still sends (closing
//! with unread input would reset the connection and could lose the answer), or reset an evicted
//! connection at once.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::{timeout_at, Instant};

/// After the answer: how long unread input is drained so that closing does not reset the
/// connection before the client has read the answer, and how much of it at most.
pub(super) const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 256 * 1024;

/// Reads and discards from a tokio stream until EOF, an error, `$end` or [`LINGER_BYTES`].
macro_rules! drain {
    ($stream:expr, $end:expr) => {{
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match timeout_at($end, $stream.readable()).await {
                Ok(Ok(())) => match $stream.try_read(&mut sink) {
                    Ok(0) => break,
                    Ok(n) => drained += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => break,
                },
                _ => break,
            }
        }
    }};
}

/// A second descriptor of a connection's socket: hyper drops its own when done (or on an
/// error), and this one keeps the socket open for the drain of [`Spare::linger`].
pub(super) enum Spare {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// A connection's stream (TCP or Unix).
pub(super) trait Stream: AsyncRead + AsyncWrite + AsFd + Unpin + Send + 'static {
    fn spare(&self) -> io::Result<Spare>;
}

impl Stream for TcpStream {
    fn spare(&self) -> io::Result<Spare> {
        Ok(Spare::Tcp(self.as_fd().try_clone_to_owned()?.into()))
    }
}

impl Stream for UnixStream {
    fn spare(&self) -> io::Result<Spare> {
        Ok(Spare::Unix(self.as_fd().try_clone_to_owned()?.into()))
    }
}

impl Spare {
    /// Closes with a reset (an evicted connection: no FIN handshake, no TIME_WAIT here).
    pub(super) fn reset(self) {
        if let Spare::Tcp(s) = &self {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }

    /// Half-closes the socket and discards what the client still sends, for at most
    /// [`LINGER`] and [`LINGER_BYTES`]: closing a socket with unread input resets the
    /// connection, and the client could lose the answer (e.g. a 413 sent before its body was
    /// read).
    pub(super) async fn linger(self) {
        let end = Instant::now() + LINGER;
        match self {
            Spare::Tcp(s) => {
                let _ = s.shutdown(Shutdown::Write);
                if let Ok(s) = TcpStream::from_std(s) {
                    drain!(s, end);
                }
            }
            Spare::Unix(s) => {
                let _ = s.shutdown(Shutdown::Write);
                if let Ok(s) = UnixStream::from_std(s) {
                    drain!(s, end);
                }
            }
        }
    }
}
