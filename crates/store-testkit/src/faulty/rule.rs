//! The rules a [`Faulty`](super::Faulty) applies: which operation, which fault, and when.

use std::time::Duration;

use store_core::Key;
#[cfg(doc)]
use store_core::{Error, WriteResolver};

/// An operation a fault can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `Backend::put`.
    Put,
    /// `Backend::writer` (opening a writer).
    WriterOpen,
    /// `ObjectWriter::write` (one chunk).
    WriterWrite,
    /// `ObjectWriter::close` (the commit).
    WriterClose,
    /// `Backend::get`.
    Get,
    /// `Backend::head`.
    Head,
    /// `Backend::delete`.
    Delete,
    /// `Backend::list` (fails or delays the first item).
    List,
    /// Each item of a listing, checked before it is read: an injected error ends the
    /// listing mid-stream (with [`Fault::LostReply`], the item is read and lost).
    ListItem,
    /// `Backend::watch`.
    Watch,
}

/// What happens to a call a rule matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Fail with a non-retryable [`Error::Backend`] saying "injected fault at `op`".
    Fail,
    /// Fail with a retryable [`Error::Backend`].
    FailRetryable,
    /// Fail, before the call, with [`Error::not_applied`]: the backend knows the request was
    /// never sent (a refused connection), so a retry layer may send a conditional write again.
    Refused,
    /// Make the call, then fail with a retryable [`Error::Backend`] instead of its reply: the
    /// write *was* applied, but the caller cannot know (a reply lost on the network).
    LostReply,
    /// Like [`Fault::LostReply`], but a put or a writer's close fails with
    /// [`Error::outcome_unknown`] carrying a [`WriteResolver`] that reports the applied
    /// write, as a backend that can read back its own writes would. Other operations fail as
    /// with `LostReply`.
    LostReplyResolvable,
    /// Fail, without making the call, with [`Error::outcome_unknown`]: the request was lost
    /// on its way (a timeout), which the caller cannot tell from a lost reply. A put's or a
    /// writer's close's error carries a [`WriteResolver`] that finds the write not applied
    /// (`None`), as a backend that reads back its own writes would; other operations' carry
    /// none.
    DroppedResolvable,
    /// Wait this long, then carry on normally.
    Latency(Duration),
    /// Wait until [`Faulty::release`](super::Faulty::release) is called, then carry on normally.
    Hang,
}

/// One injection: a fault on an operation, optionally only for some keys, after some calls,
/// for a number of times.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(super) op: FaultOp,
    pub(super) fault: Fault,
    pub(super) key: Option<String>,
    pub(super) skip: u64,
    pub(super) times: Option<u64>,
    pub(super) probability: Option<f64>,
}

impl Rule {
    /// `fault` on every call of `op`.
    pub fn new(op: FaultOp, fault: Fault) -> Self {
        Rule {
            op,
            fault,
            key: None,
            skip: 0,
            times: None,
            probability: None,
        }
    }

    /// Only for this key.
    pub fn for_key(mut self, key: &Key) -> Self {
        self.key = Some(key.to_string());
        self
    }

    /// Let the first `n` matching calls through.
    pub fn after(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    /// Apply to at most `n` calls, then stop.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Apply to each matching call with probability `p` (0.0 to 1.0); a call it spares
    /// is left to the next rule. The draws come from a fixed-seed generator, so a test
    /// whose calls come in a fixed order sees the same faults every run.
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = Some(p);
        self
    }
}
