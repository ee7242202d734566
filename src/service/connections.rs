//! Accepting connections, on the gRPC and HTTP ports alike: at most `--max-connections` open per
//! port (one more is closed at once), a connection that has not sent the start of a request
//! within `--handshake-timeout-s`, or stays silent for `--idle-timeout-s` while the server waits
//! to read from it, is closed; and accepting backs off when the process is out of descriptors
//! instead of spinning on the error.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::refusals::{refused, Limit};
use super::ConnectionLimits;

/// Bytes a client must send within the handshake timeout: the HTTP/2 preface is 24 bytes, and
/// any HTTP/1 request line with its headers or TLS ClientHello is longer.
const HANDSHAKE_BYTES: usize = 24;

/// Accepts connections on one port within [`ConnectionLimits`].
pub struct Acceptor {
    listener: TcpListener,
    open: Arc<Semaphore>,
    limits: ConnectionLimits,
    /// The port's name in logs ("gRPC", "HTTP").
    port: &'static str,
}

impl Acceptor {
    /// Accepts on `listener` within `limits`.
    pub fn new(listener: TcpListener, limits: ConnectionLimits, port: &'static str) -> Self {
        Self {
            listener,
            open: Arc::new(Semaphore::new(limits.max_connections)),
            limits,
            port,
        }
    }

    /// The next connection within the limits. Never fails: a connection over the cap is closed
    /// and the next awaited; accept errors are retried, with a growing pause when they are not
    /// about one connection (out of descriptors or memory).
    pub async fn next(&mut self) -> (Guarded, SocketAddr) {
        let mut pause = Backoff::default();
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    pause = Backoff::default();
                    let Ok(slot) = self.open.clone().try_acquire_owned() else {
                        refused(
                            Limit::Connections,
                            format_args!(
                                "{} connections open on the {} port (--max-connections): \
                                 closing a new one from {peer}",
                                self.limits.max_connections, self.port
                            ),
                        );
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    return (Guarded::new(stream, slot, &self.limits), peer);
                }
                Err(e) if about_one_connection(&e) => continue,
                Err(e) => {
                    let delay = pause.next_delay();
                    refused(
                        Limit::Descriptors,
                        format_args!(
                            "cannot accept on the {} port: {e}; pausing {delay:?}",
                            self.port
                        ),
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The connections as the stream tonic serves; accepting stops (and the port closes) when
    /// the server drops the stream.
    pub fn into_incoming(
        mut self,
    ) -> tokio_stream::wrappers::ReceiverStream<Result<Guarded, Infallible>> {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    _ = tx.closed() => return,
                    (io, _) = self.next() => io,
                };
                if tx.send(Ok(next)).await.is_err() {
                    return;
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}

impl axum::serve::Listener for Acceptor {
    type Io = Guarded;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (Guarded, SocketAddr)> + Send {
        self.next()
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// Errors that concern only the connection being accepted: the next accept may succeed at once.
fn about_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Pauses after accept failures: 10 ms, doubling to 1 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = Duration::from_millis(10 << self.failures.min(7)).min(Duration::from_secs(1));
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

/// An accepted connection: holds its place under the cap until dropped, and fails its reads
/// once the handshake or idle deadline passes while the server waits to read.
pub struct Guarded {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    accepted: Instant,
    /// Bytes still to come before the handshake deadline gives way to the idle one.
    handshake_left: usize,
    last_activity: Instant,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, limits: &ConnectionLimits) -> Self {
        let now = Instant::now();
        Self {
            stream,
            _slot: slot,
            accepted: now,
            handshake_left: HANDSHAKE_BYTES,
            last_activity: now,
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.idle_timeout,
            timer: Box::pin(tokio::time::sleep(limits.handshake_timeout)),
        }
    }

    /// When the connection is closed unless something is read: an absolute deadline during the
    /// handshake (a client trickling bytes cannot stretch it), then silence since the last
    /// read or write.
    fn deadline(&self) -> Instant {
        if self.handshake_left > 0 {
            self.accepted + self.handshake_timeout
        } else {
            self.last_activity + self.idle_timeout
        }
    }

    /// With nothing to read: whether the deadline passed (the timer is re-armed lazily, so
    /// busy connections do not touch the timer wheel on every read).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                return true;
            }
            self.timer.as_mut().reset(deadline.into());
        }
    }

    fn expired_error(&self) -> io::Error {
        let (what, timeout, flag) = if self.handshake_left > 0 {
            (
                "sent no request",
                self.handshake_timeout,
                "--handshake-timeout-s",
            )
        } else {
            ("was silent", self.idle_timeout, "--idle-timeout-s")
        };
        let peer = self
            .stream
            .peer_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string());
        let message = format!("connection from {peer} {what} for {timeout:?} ({flag}): closed");
        refused(Limit::Idle, &message);
        io::Error::new(io::ErrorKind::TimedOut, message)
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                this.handshake_left = this.handshake_left.saturating_sub(n);
                if n > 0 {
                    this.last_activity = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.poll_expired(cx) => Poll::Ready(Err(this.expired_error())),
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_activity = Instant::now();
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_activity = Instant::now();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_pauses_grow_to_a_second() {
        let mut b = Backoff::default();
        let delays: Vec<_> = (0..10).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }

    #[test]
    fn only_per_connection_errors_are_retried_at_once() {
        let of = |code| io::Error::from_raw_os_error(code);
        assert!(about_one_connection(&of(libc::ECONNABORTED)));
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(!about_one_connection(&of(code)), "{code}");
        }
    }
}
