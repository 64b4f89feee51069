//! The bound on the HTTP connections a kv node serves at once ([`MAX_HTTP_CONNECTIONS`]):
//! a listener that accepts a connection only while it holds a free slot for it, and closes
//! one idle for [`HTTP_IDLE_TIMEOUT`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The HTTP connections a kv node serves at once. Each costs a task and its buffers, and
/// HTTP/1 serves one request at a time on a connection, so this also bounds the requests
/// in progress (and what they hold in the node besides the node's own limits). Past it the
/// node accepts nothing more until a connection closes: new clients wait in the kernel's
/// listen backlog, and time out there if it stays full. Without it, each connection a
/// client opened cost a task, however many (review). An idle connection gives its slot
/// back after [`HTTP_IDLE_TIMEOUT`].
pub const MAX_HTTP_CONNECTIONS: usize = 1024;

/// How long a connection may go without reading or writing a byte before the node closes
/// it. Without it, a client that opened connections and sent nothing held their slots for
/// good, and [`MAX_HTTP_CONNECTIONS`] such clients locked every other client out (review).
/// Far longer than any request takes to be answered (a proposal's timeout is seconds),
/// and about what HTTP servers give a keep-alive connection.
pub const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A listener that serves at most `slots` connections at once, each until it has been idle
/// for `idle`.
pub struct Limited<L> {
    inner: L,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl<L> Limited<L> {
    /// `inner`, serving at most `slots` connections at once, each until it has been idle
    /// for `idle`.
    pub fn new(inner: L, slots: usize, idle: Duration) -> Limited<L> {
        Limited {
            inner,
            slots: Arc::new(Semaphore::new(slots)),
            idle,
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
        let held = Held {
            io,
            _slot: slot,
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep(self.idle)),
        };
        (held, addr)
    }

    fn local_addr(&self) -> io::Result<L::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection and its slot, given back when the connection is dropped. Reads
/// and writes fail with [`io::ErrorKind::TimedOut`] once it has moved no byte for its idle
/// timeout, which ends the connection.
pub struct Held<Io> {
    io: Io,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    /// When the connection counts as idle: `idle` after its last byte read or written.
    deadline: Pin<Box<Sleep>>,
}

impl<Io> Held<Io> {
    /// A result of the connection's IO: progress restarts the idle clock; waiting past
    /// the deadline fails. (Waiting registers the deadline's wakeup, so that a connection
    /// nobody writes to is woken, and fails, when it comes.)
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
            done => {
                self.deadline.as_mut().reset(Instant::now() + self.idle);
                done
            }
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Held<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        self.timed(cx, result)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Held<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        self.timed(cx, result)
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
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.timed(cx, result)
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
        let mut limited = Limited::new(listener, 1, HTTP_IDLE_TIMEOUT);
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

    /// A connection that moves no byte for the idle timeout fails its read, which ends it
    /// and frees its slot; one that moves a byte restarts the clock. Time is paused: the
    /// runtime moves it on while everything waits.
    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_and_frees_its_slot() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let idle = Duration::from_secs(60);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut limited = Limited::new(listener, 1, idle);
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut served, _) = limited.accept().await;
        let started = Instant::now();
        let mut byte = [0u8; 1];
        client.write_all(b"x").await.unwrap();
        served.read_exact(&mut byte).await.unwrap();
        let read = tokio::time::timeout(2 * idle, served.read(&mut byte)).await;
        let read = read.expect("still open past twice the idle timeout");
        assert_eq!(read.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= idle, "timed out early");
        drop(served);
        let _next = TcpStream::connect(addr).await.unwrap();
        let accepted = tokio::time::timeout(Duration::from_secs(1), limited.accept()).await;
        assert!(accepted.is_ok(), "the slot was not freed");
        drop(client);
    }
}
