//! The outgoing side of a `/ws` connection: frames go straight to the
//! socket from whoever produces them; a queue holds only what the socket
//! would not take yet.
//!
//! Why not a writer task: a delivery through one was a queue hop, a task
//! wake-up, a framing pass and a flush, and at 10,000 sockets that machinery
//! cost as much CPU as the kernel write itself (docs/PERFORMANCE.md). Here a
//! delivery appends the event's shared frame ([`wire::ws_frame`], built once
//! for every subscriber) to the queue, and [`Out::flush`] — which the hub
//! calls once per dispatch batch — writes the queue with one `writev`: one
//! syscall and no wake-up per connection per batch, however many frames the
//! batch gave it.
//!
//! When the kernel's send buffer is full, the rest stays queued and a task
//! is spawned to wait until the socket is writable and finish the job; it
//! ends once the queue is empty, so an idle connection has no writer task at
//! all. The queue is bounded at `--queue-size` frames: a full queue is the
//! slow-consumer signal, as with every transport.
//!
//! [`wire::ws_frame`]: crate::transport::wire::ws_frame

use crate::hub::SinkError;
use bytes::{Buf, Bytes};
use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    sync::{Arc, Mutex, MutexGuard},
};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Frames handed to one `writev`.
const WRITEV_FRAMES: usize = 64;

pub struct Out {
    tcp: Arc<TcpStream>,
    limit: usize,
    state: Mutex<State>,
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
    pub fn new(tcp: Arc<TcpStream>, limit: usize) -> Arc<Out> {
        Arc::new(Out {
            tcp,
            limit,
            state: Mutex::new(State::default()),
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
        self.flush();
        Ok(())
    }

    /// Writes what is queued as far as the socket takes it without
    /// blocking; a flusher task takes over the rest.
    pub fn flush(self: &Arc<Self>) {
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
