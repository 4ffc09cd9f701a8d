//! The order of one connection's appends.
//!
//! Kafka serves the requests of a connection one after another, so a producer
//! finds its batches at increasing offsets in the order it sent them, however
//! many requests it has in flight (`max.in.flight`). This handler serves a
//! connection's requests concurrently (a Produce waiting for its fsync must
//! not hold up the next one), so that order is kept here, by a chain of turns:
//!
//! - the connection reader gives each Produce request a [`Turn`] as it reads
//!   it, in request order ([`Sequencer::take_turn`]);
//! - the request does whatever may wait (naming its topics, creating them,
//!   checking its batches, rebuilding producer state, opening its partitions)
//!   beside the other requests;
//! - it then waits for its turn ([`Turn::wait`]: the previous Produce request
//!   has placed its appends), places its own appends in their ledgers' queues,
//!   and passes the turn on by dropping it.
//!
//! Placing is what the host's `append` does when its future is first polled
//! on a partition that is open: it queues the entries on the ledger's writer,
//! whose order is the offsets' order. (The host exempts that future from
//! tokio's cooperative budget: with dozens of requests placed in one poll of
//! the connection, the budget ran out and made later first polls return
//! before queueing, which stored librdkafka's pipelined 500 KB batches of
//! test 0041 in reverse runs of up to 64.) The waiting before that point is what
//! reordered pipelined batches when it was not sequenced: a request that
//! waited for its topic to be created or its ledger to open let a later one,
//! which found both ready, append first.
//!
//! A request that never reaches its turn (its connection closed) drops its
//! `Turn`, which passes it too: the next request, if any, is not stuck.

use tokio::sync::oneshot;

/// Hands out the turns of one connection's Produce requests, in the order
/// they are read.
#[derive(Debug, Default)]
pub struct Sequencer {
    /// Answered when the last turn handed out is passed.
    last: Option<Link>,
}

/// What a passed turn leaves its successor: nothing when it had waited for its
/// own predecessors, else the link to wait on in its place.
#[derive(Debug)]
struct Link(oneshot::Receiver<Option<Link>>);

impl Sequencer {
    /// The turn of the request read now: after every turn handed out before.
    pub fn take_turn(&mut self) -> Turn {
        let (done, passed) = oneshot::channel();
        Turn { previous: self.last.replace(Link(passed)), done: Some(done) }
    }
}

/// One request's place in its connection's order of appends; dropping it
/// passes the turn to the next request.
#[derive(Debug)]
pub struct Turn {
    /// The turn before this one, until it has been waited for.
    previous: Option<Link>,
    done: Option<oneshot::Sender<Option<Link>>>,
}

impl Turn {
    /// A turn with no request before it (a request served alone).
    pub fn first() -> Self {
        Sequencer::default().take_turn()
    }

    /// Waits until every earlier request of the connection has passed its turn.
    pub async fn wait(&mut self) {
        while let Some(Link(previous)) = self.previous.take() {
            // An earlier turn dropped before it waited hands over its own
            // predecessor (Some): this turn waits for that one instead.
            if let Ok(Some(earlier)) = previous.await {
                self.previous = Some(earlier);
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            // The next turn may be gone (its connection closed): nothing to tell.
            let _ = done.send(self.previous.take());
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[test]
    fn turns_pass_in_the_order_they_were_handed_out() {
        let mut sequencer = Sequencer::default();
        let mut first = sequencer.take_turn();
        let mut second = sequencer.take_turn();
        let mut third = sequencer.take_turn();
        assert!(first.wait().now_or_never().is_some(), "the first turn is free");
        assert!(second.wait().boxed().now_or_never().is_none(), "the second waits for the first");
        drop(first);
        assert!(second.wait().now_or_never().is_some());
        let mut waiting = third.wait().boxed();
        assert!((&mut waiting).now_or_never().is_none(), "the third waits for the second");
        drop(second);
        assert!(waiting.now_or_never().is_some());
    }

    #[test]
    fn a_turn_dropped_before_its_wait_passes_it() {
        let mut sequencer = Sequencer::default();
        let first = sequencer.take_turn();
        let second = sequencer.take_turn();
        let mut third = sequencer.take_turn();
        drop(second);
        assert!(third.wait().boxed().now_or_never().is_none(), "still behind the first");
        drop(first);
        assert!(third.wait().now_or_never().is_some());
    }
}
