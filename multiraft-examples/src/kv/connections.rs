//! The bound on the HTTP connections a kv node serves at once ([`MAX_HTTP_CONNECTIONS`]):
//! a listener that accepts a connection only while it holds a free slot for it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The HTTP connections a kv node serves at once. Each costs a task and its buffers, and
/// HTTP/1 serves one request at a time on a connection, so this also bounds the requests
/// in progress (and what they hold in the node besides the node's own limits). Past it the
/// node accepts nothing more until a connection closes: new clients wait in the kernel's
/// listen backlog, and time out there if it stays full. Without it, each connection a
/// client opened cost a task, however many (review). An idle connection keeps its slot
/// until its client closes it (the server sets no idle timeout): enough idle clients lock
/// others out, though memory stays bounded.
pub const MAX_HTTP_CONNECTIONS: usize = 1024;

/// A listener that serves at most `slots` connections at once.
pub struct Limited<L> {
    inner: L,
    slots: Arc<Semaphore>,
}

impl<L> Limited<L> {
    /// `inner`, serving at most `slots` connections at once.
    pub fn new(inner: L, slots: usize) -> Limited<L> {
        Limited {
            inner,
            slots: Arc::new(Semaphore::new(slots)),
        }
    }
}

impl<L: Listener> Listener for Limited<L> {
    type Io = Held<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Held<L::Io>, L::Addr) {
        let slot = match Arc::clone(&self.slots).acquire_owned().await {
            Ok(slot) => slot,
            // Only a closed semaphore refuses, and nothing closes this one.
            Err(_) => std::future::pending().await,
        };
        let (io, addr) = self.inner.accept().await;
        (Held { io, _slot: slot }, addr)
    }

    fn local_addr(&self) -> io::Result<L::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection and its slot, given back when the connection is dropped.
pub struct Held<Io> {
    io: Io,
    _slot: OwnedSemaphorePermit,
}

impl<Io: AsyncRead + Unpin> AsyncRead for Held<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Held<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A connection past the bound is accepted only once one of those served closes.
    #[tokio::test]
    async fn a_connection_past_the_bound_waits_for_a_free_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut limited = Limited::new(listener, 1);
        let _first = TcpStream::connect(addr).await.unwrap();
        let (served, _) = limited.accept().await;
        let _second = TcpStream::connect(addr).await.unwrap();
        let mut next = Box::pin(limited.accept());
        let waited = tokio::time::timeout(Duration::from_millis(200), &mut next).await;
        assert!(waited.is_err(), "accepted past the bound");
        drop(served);
        let accepted = tokio::time::timeout(Duration::from_secs(10), next).await;
        assert!(accepted.is_ok(), "not accepted once the slot was free");
    }
}
