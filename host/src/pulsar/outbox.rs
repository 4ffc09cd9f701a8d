//! What one Pulsar connection has to write: frames queued for its writer,
//! bounded in count and in bytes (`maxPendingBytesPerConnection`), so that a
//! client that does not read (while its consumers' permits let messages be
//! dispatched to it) holds at most that much of the broker's memory.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Frames queued for one connection's writer, at most.
const FRAMES: usize = 1024;

/// A frame on its way to the socket, holding its share of the byte budget
/// until it is written.
#[derive(Debug)]
pub struct Queued {
    /// The frame.
    pub frame: Bytes,
    _budget: OwnedSemaphorePermit,
}

/// The sending side, cloned by everything that writes to the connection
/// (the connection's answers, its producers' receipts, its consumers'
/// subscriptions).
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    capacity: usize,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotQueued {
    /// The queue is full (in frames or bytes): try later.
    Full,
    /// The connection is gone.
    Closed,
}

impl Outbox {
    /// An outbox of `bytes` (at least one frame of any size fits: a larger
    /// frame takes the whole budget) and the writer's receiving side.
    pub fn new(bytes: usize) -> (Self, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(FRAMES);
        let capacity = bytes.clamp(1, Semaphore::MAX_PERMITS);
        (Self { tx, budget: Arc::new(Semaphore::new(capacity)), capacity }, rx)
    }

    fn share(&self, frame: &Bytes) -> u32 {
        u32::try_from(frame.len().clamp(1, self.capacity)).unwrap_or(u32::MAX)
    }

    /// Queues `frame`, waiting for room.
    pub async fn send(&self, frame: Bytes) -> Result<(), NotQueued> {
        let share = self.share(&frame);
        let budget = Arc::clone(&self.budget).acquire_many_owned(share).await.map_err(|_| NotQueued::Closed)?;
        self.tx.send(Queued { frame, _budget: budget }).await.map_err(|_| NotQueued::Closed)
    }

    /// Queues `frame` if there is room now.
    pub fn try_send(&self, frame: Bytes) -> Result<(), NotQueued> {
        if self.tx.is_closed() {
            return Err(NotQueued::Closed);
        }
        let share = self.share(&frame);
        let budget = match Arc::clone(&self.budget).try_acquire_many_owned(share) {
            Ok(budget) => budget,
            Err(TryAcquireError::NoPermits) => return Err(NotQueued::Full),
            Err(TryAcquireError::Closed) => return Err(NotQueued::Closed),
        };
        self.tx.try_send(Queued { frame, _budget: budget }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NotQueued::Full,
            mpsc::error::TrySendError::Closed(_) => NotQueued::Closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_refused_past_the_byte_budget_until_written() {
        let (outbox, mut rx) = Outbox::new(100);
        assert_eq!(outbox.try_send(Bytes::from(vec![0; 60])), Ok(()));
        assert_eq!(outbox.try_send(Bytes::from(vec![0; 60])), Err(NotQueued::Full), "120 > 100 bytes");
        let written = rx.try_recv().expect("queued");
        assert_eq!(written.frame.len(), 60);
        drop(written);
        assert_eq!(outbox.try_send(Bytes::from(vec![0; 1000])), Ok(()), "a large frame takes the whole budget");
        assert_eq!(outbox.try_send(Bytes::from_static(b"x")), Err(NotQueued::Full));
        drop(rx);
        assert_eq!(outbox.try_send(Bytes::from_static(b"x")), Err(NotQueued::Closed));
    }
}
