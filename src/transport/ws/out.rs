//! The outgoing side of `/ws` connections: frames are written to the socket
//! without a writer task per connection.
//!
//! Why: a delivery through a per-connection writer task was a queue hop, a
//! task wake-up, a framing pass and a flush, and at 10,000 sockets that
//! machinery cost as much CPU as the kernel write itself
//! (docs/PERFORMANCE.md). Here a delivery appends the event's shared frame
//! ([`wire::ws_frame`], built once for every subscriber) to the connection's
//! queue, and [`Out::flush`] — which the hub calls once per dispatch batch —
//! puts the connection on the [`Writer`]'s list. The one writer task of the
//! server then writes each listed connection's queue with one `writev`.
//! Under load the list fills while the writer works through it (it yields
//! every [`WRITES_PER_TURN`] writes, so publishes and the dispatcher keep
//! going), and one write carries every frame a connection got meanwhile;
//! at everyday rates a batch costs one wake-up, not one per connection.
//! Frames of the connection's own (answers, pings, close) are written at once.
//!
//! When the kernel's send buffer is full, the rest stays queued and a task
//! is spawned to wait until the socket is writable and finish the job; it
//! ends once the queue is empty. The queue is bounded at `--queue-size`
//! frames: a full queue is the slow-consumer signal, as with every transport.
//!
//! [`wire::ws_frame`]: crate::transport::wire::ws_frame

use crate::hub::SinkError;
use bytes::{Buf, Bytes};
use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Frames handed to one `writev`.
const WRITEV_FRAMES: usize = 64;
/// Connections the writer task writes before it lets other tasks run.
const WRITES_PER_TURN: usize = 64;

/// The server's list of connections with frames to write, and its one
/// writer task ([`Writer::run`]).
#[derive(Default)]
pub struct Writer {
    listed: Mutex<Vec<Arc<Out>>>,
    wake: Notify,
}

impl Writer {
    /// Writes listed connections until `stop` is cancelled. Connections that
    /// end write their own goodbye, so nothing waits on this task at shutdown.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut turn = Vec::new();
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = stop.cancelled() => return,
            }
            loop {
                std::mem::swap(
                    &mut turn,
                    &mut *self.listed.lock().unwrap_or_else(PoisonError::into_inner),
                );
                if turn.is_empty() {
                    break;
                }
                for (i, out) in turn.drain(..).enumerate() {
                    // Unlisted before writing: a frame queued after this lists it again.
                    out.listed.store(false, Ordering::Release);
                    out.write_queued();
                    if i % WRITES_PER_TURN == WRITES_PER_TURN - 1 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }
}

pub struct Out {
    tcp: Arc<TcpStream>,
    limit: usize,
    state: Mutex<State>,
    writer: Arc<Writer>,
    /// On the writer's list (at most once).
    listed: AtomicBool,
    /// Cancelled when the connection ends: a waiting flusher gives up.
    gone: CancellationToken,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Bytes>,
    /// The front frame is partly written: it must go out whole, even when
    /// the rest of the queue is dropped.
    partial: bool,
    /// The socket would block and a flusher task owns writing until the
    /// queue is empty; others only append.
    stalled: bool,
    /// A write failed: the peer is gone.
    broken: bool,
    /// The connection is closing: only its goodbye may still be queued.
    sealed: bool,
}

impl State {
    /// Writes queued frames until the queue is empty (`Ok(true)`) or the
    /// socket would block (`Ok(false)`).
    fn write(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while let Some(front) = self.queue.front() {
            let result = if self.queue.len() == 1 {
                tcp.try_write(front)
            } else {
                let mut slices = [IoSlice::new(&[]); WRITEV_FRAMES];
                let mut count = 0;
                for (slice, frame) in slices.iter_mut().zip(&self.queue) {
                    *slice = IoSlice::new(frame);
                    count += 1;
                }
                tcp.try_write_vectored(&slices[..count])
            };
            let written = match result {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => {
                    self.broken = true;
                    self.queue.clear();
                    return Err(e);
                }
            };
            self.consume(written);
        }
        Ok(true)
    }

    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let Some(front) = self.queue.front_mut() else {
                return;
            };
            if written < front.len() {
                front.advance(written);
                self.partial = true;
                return;
            }
            written -= front.len();
            self.queue.pop_front();
            self.partial = false;
        }
    }
}

impl Out {
    pub fn new(tcp: Arc<TcpStream>, limit: usize, writer: Arc<Writer>) -> Arc<Out> {
        Arc::new(Out {
            tcp,
            limit,
            state: Mutex::new(State::default()),
            writer,
            listed: AtomicBool::new(false),
            gone: CancellationToken::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update keeps the queue consistent; a panic elsewhere leaves it usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a frame of the hub's; it goes out at the next [`Out::flush`].
    /// `Full` when `limit` frames are waiting that the socket will not take.
    pub fn push(self: &Arc<Self>, frame: Bytes) -> Result<(), SinkError> {
        let mut state = self.state();
        if state.broken || state.sealed {
            return Err(SinkError::Closed);
        }
        if state.queue.len() >= self.limit {
            // A burst can fill the queue between flushes: make room first.
            self.write_or_stall(&mut state);
            if state.broken {
                return Err(SinkError::Closed);
            }
            if state.queue.len() >= self.limit {
                return Err(SinkError::Full);
            }
        }
        state.queue.push_back(frame);
        Ok(())
    }

    /// Queues a frame of the connection's own (an answer, a ping, a close)
    /// and writes it: best effort, past the bound, until the connection breaks.
    pub fn send(self: &Arc<Self>, frame: Bytes) -> io::Result<()> {
        {
            let mut state = self.state();
            if state.broken {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            state.queue.push_back(frame);
        }
        self.write_queued();
        Ok(())
    }

    /// Lists the connection for the writer task, which writes its queue soon.
    pub fn flush(self: &Arc<Self>) {
        if !self.listed.swap(true, Ordering::AcqRel) {
            let mut listed = self
                .writer
                .listed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let first = listed.is_empty();
            listed.push(self.clone());
            if first {
                self.writer.wake.notify_one();
            }
        }
    }

    /// Writes what is queued as far as the socket takes it without
    /// blocking; a flusher task takes over the rest.
    fn write_queued(self: &Arc<Self>) {
        let mut state = self.state();
        if !state.queue.is_empty() {
            self.write_or_stall(&mut state);
        }
    }

    fn write_or_stall(self: &Arc<Self>, state: &mut State) {
        if state.stalled || state.broken {
            return;
        }
        if let Ok(false) = state.write(&self.tcp) {
            state.stalled = true;
            tokio::spawn(self.clone().flush_when_writable());
        }
    }

    async fn flush_when_writable(self: Arc<Self>) {
        loop {
            tokio::select! {
                ready = self.tcp.writable() => if ready.is_err() {
                    self.state().broken = true;
                    return;
                },
                () = self.gone.cancelled() => return,
            }
            let mut state = self.state();
            match state.write(&self.tcp) {
                Ok(false) => {}
                Ok(true) | Err(_) => {
                    state.stalled = false;
                    return;
                }
            }
        }
    }

    /// Stops taking the hub's frames; with `drop_queued`, frames not yet
    /// started are dropped too (a slow peer resumes with `since` instead).
    pub fn seal(&self, drop_queued: bool) {
        let mut state = self.state();
        state.sealed = true;
        if drop_queued {
            let keep = usize::from(state.partial);
            state.queue.truncate(keep);
        }
    }

    /// Waits until everything queued is written (or the peer is gone).
    pub async fn drained(self: &Arc<Self>) {
        loop {
            {
                let mut state = self.state();
                // Written here even while a flusher waits: the lock orders the writes.
                match state.write(&self.tcp) {
                    Ok(true) | Err(_) => return,
                    Ok(false) => {}
                }
            }
            if self.tcp.writable().await.is_err() {
                return;
            }
        }
    }

    /// The connection has ended: a flusher still waiting gives up.
    pub fn close(&self) {
        self.seal(true);
        self.gone.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::{io::AsyncReadExt, net::TcpListener};

    /// A connected pair: the server side for [`Out`] with a small send
    /// buffer (so writes stop part-way), and the client side.
    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        (Arc::new(server), client)
    }

    fn frame(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[tokio::test]
    async fn a_stalled_queue_is_finished_by_the_flusher_in_order() {
        let (server, mut client) = pair().await;
        let out = Out::new(server, 64, Arc::default());
        let frames: Vec<Bytes> = (0..16).map(|i| frame(i, 64 * 1024)).collect();
        for f in &frames {
            out.push(f.clone()).unwrap();
        }
        out.write_queued();
        assert!(
            out.state().stalled,
            "1 MiB does not fit a 4 KiB send buffer"
        );
        let expected: Vec<u8> = frames.concat();
        let mut got = vec![0; expected.len()];
        client.read_exact(&mut got).await.unwrap();
        assert!(got == expected, "the bytes arrive whole and in order");
    }

    #[tokio::test]
    async fn sealing_a_slow_queue_keeps_the_frame_already_started() {
        let (server, mut client) = pair().await;
        let out = Out::new(server, 4, Arc::default());
        let big = frame(1, 1 << 20);
        out.push(big.clone()).unwrap();
        out.push(frame(2, 100)).unwrap();
        out.write_queued();
        assert!(out.state().partial, "the 1 MiB frame went out in part");
        out.seal(true);
        assert_eq!(out.push(frame(3, 1)), Err(SinkError::Closed));
        out.send(frame(4, 10)).unwrap();
        let mut got = vec![0; big.len() + 10];
        client.read_exact(&mut got).await.unwrap();
        out.drained().await;
        assert!(got[..big.len()] == big[..], "the started frame is finished");
        assert!(
            got[big.len()..] == [4; 10],
            "then the goodbye, without the dropped frame"
        );
    }

    #[tokio::test]
    async fn a_full_queue_writes_before_it_refuses() {
        let (server, mut client) = pair().await;
        let out = Out::new(server, 2, Arc::default());
        for i in 0..10 {
            // Each push past the bound first writes what is queued.
            out.push(frame(i, 10)).unwrap();
        }
        out.write_queued();
        let mut got = vec![0; 100];
        client.read_exact(&mut got).await.unwrap();
        let expected: Vec<u8> = (0..10).flat_map(|i| [i; 10]).collect();
        assert_eq!(got, expected);
        drop(client);
        // A peer that is gone: pushes end in Closed once a write fails.
        let mut closed = false;
        for _ in 0..1000 {
            if out.push(frame(9, 1024)) == Err(SinkError::Closed) {
                closed = true;
                break;
            }
            out.write_queued();
            tokio::task::yield_now().await;
        }
        assert!(closed, "a write to a closed peer breaks the queue");
    }
}
