//! The socket under each HTTP connection: it tells the connection's phase
//! tracking when a request head begins, closes with a lingering close, and
//! hands its TCP stream to a transport that takes over after an upgrade.

use super::State;
use axum::body::Bytes;
use hyper_util::rt::TokioIo;
use std::{
    io,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

/// The TCP stream, noticing when bytes of a new request arrive.
pub(super) struct Watched {
    /// `None` only once dropped: the stream then belongs to [`linger`].
    pub(super) inner: Option<TcpStream>,
    pub(super) state: Arc<State>,
}

/// How long, and how many bytes, a closing connection reads away.
const LINGER_FOR: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

impl Watched {
    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.inner
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection closed"))
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let (Some(stream), Ok(runtime)) =
            (self.inner.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move { linger(&stream).await });
        }
    }
}

/// A lingering close (as nginx does): closing a socket that still has
/// unread bytes makes the kernel send a reset, which can destroy our last
/// bytes — a WebSocket close 1009, an error answer — before the peer reads
/// them. So send FIN first, then read and discard what the peer is still
/// sending until it closes too, within a time and byte bound. Takes the
/// stream shared, as `/ws` shares its socket between reading and writing.
pub(crate) async fn linger(stream: &TcpStream) {
    if socket2::SockRef::from(stream)
        .shutdown(std::net::Shutdown::Write)
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER_FOR, async {
        let mut read = 0;
        while read < LINGER_BYTES {
            if stream.readable().await.is_err() {
                break;
            }
            match stream.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    })
    .await;
}

/// The TCP stream under a connection hyper upgraded, and the bytes hyper
/// had read past the upgrade request: `/ws`, which frames its own writes,
/// takes the socket over here. `None` for a connection this layer did not
/// accept.
pub(crate) fn upgraded_stream(upgraded: hyper::upgrade::Upgraded) -> Option<(TcpStream, Bytes)> {
    let parts = upgraded.downcast::<TokioIo<Watched>>().ok()?;
    let stream = parts.io.into_inner().inner.take()?;
    Some((stream, parts.read_buf))
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = match self.stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(e) => return Poll::Ready(Err(e)),
        };
        if buf.filled().len() > before
            && self.state.in_flight.load(Ordering::Relaxed) == 0
            && !self.state.head_started.swap(true, Ordering::AcqRel)
        {
            self.state.changed.notify_one();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|stream| stream.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}
