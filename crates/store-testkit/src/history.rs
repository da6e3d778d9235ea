//! Histories of operations on a backend: what each client called, when, and what came back.
//!
//! A [`History`] is what a [`Recorder`] writes down while clients
//! use a backend, and what [`check`](crate::linearizability::check) decides. Histories can
//! also be written by hand (the checker's own tests do), from [`Op`]s with public fields.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use store_core::{Key, PutMode, Version};

pub use crate::recorder::{Recorder, Recording};

/// The operations of one run, in invocation order.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every operation, in the order the clients invoked them.
    pub ops: Vec<Op>,
}

impl History {
    /// Adds an operation.
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The same history with every time shifted by `offset` (to merge histories recorded
    /// against clocks that started at different instants).
    pub fn shifted(mut self, offset: Duration) -> History {
        for op in &mut self.ops {
            op.invoked += offset;
            op.returned = op.returned.map(|t| t + offset);
        }
        self
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for op in &self.ops {
            writeln!(f, "{op}")?;
        }
        Ok(())
    }
}

/// One operation: who called what, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The client (a task, a process) that made the call. A client makes one call at a time.
    pub client: usize,
    /// The call and its arguments.
    pub call: Call,
    /// How it ended.
    pub outcome: Outcome,
    /// When it was invoked (on a monotonic clock shared by every client of the history).
    pub invoked: Duration,
    /// When it returned; `None` if it never did (its future was dropped, or it is still
    /// running when the history is taken).
    pub returned: Option<Duration>,
}

/// A call on a backend, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `put` (or a streaming writer, from open to close) of `value` under `mode`.
    Put {
        /// The key.
        key: Key,
        /// The whole value written.
        value: Bytes,
        /// Overwrite, create, or update from a version.
        mode: PutMode,
    },
    /// `get` of the whole object, without conditions.
    Get {
        /// The key.
        key: Key,
    },
    /// `head`.
    Head {
        /// The key.
        key: Key,
    },
    /// `delete`, optionally only if the current version is `if_match`.
    Delete {
        /// The key.
        key: Key,
        /// The version the delete is conditional on.
        if_match: Option<Version>,
    },
    /// `watch(key, seen)`.
    Watch {
        /// The key.
        key: Key,
        /// The version the caller had seen (`None` = absent).
        seen: Option<Version>,
    },
    /// A listing: it reads every key it covers.
    List {
        /// Only keys starting with this.
        prefix: Option<String>,
        /// Only keys after this one.
        start_after: Option<String>,
    },
}

impl Call {
    /// The key of a single-key call (`None` for a listing).
    pub fn key(&self) -> Option<&Key> {
        match self {
            Call::Put { key, .. }
            | Call::Get { key }
            | Call::Head { key }
            | Call::Delete { key, .. }
            | Call::Watch { key, .. } => Some(key),
            Call::List { .. } => None,
        }
    }

    /// Whether the call may change the store.
    pub fn is_write(&self) -> bool {
        matches!(self, Call::Put { .. } | Call::Delete { .. })
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A put succeeded and made this version.
    Written(Version),
    /// A get returned this value at this version.
    Read {
        /// The whole value.
        value: Bytes,
        /// Its version.
        version: Version,
    },
    /// A head returned this version.
    Meta(Version),
    /// A delete succeeded.
    Deleted,
    /// A delete succeeded on a backend that checks presence and deletes in two steps (see
    /// [`Recording::with_unchecked_delete_presence`](crate::history::Recording::with_unchecked_delete_presence)):
    /// the key is absent after it, whether or not it was there.
    Cleared,
    /// A watch returned this version (`None` = the key is absent).
    Watched(Option<Version>),
    /// A listing returned these keys and versions (an empty version: not reported). When
    /// `complete` is false the listing ended early (an error, or it was dropped), so it says
    /// nothing of the keys after the last one it returned.
    Listed {
        /// The keys and versions, in the order returned.
        entries: Vec<(Key, Version)>,
        /// Whether the listing reached its end.
        complete: bool,
    },
    /// `NotFound`: the key was absent.
    NotFound,
    /// `AlreadyExists` with the version found (empty if the backend did not say).
    AlreadyExists(Version),
    /// `Conflict`, with the version found if the backend said.
    Conflict(Option<Version>),
    /// An error after which the call is known to have changed nothing: a read that failed,
    /// a write refused before it was sent ([`Error::is_not_applied`](store_core::Error::is_not_applied)),
    /// invalid input. It is left out of the check.
    Failed(String),
    /// The call may or may not have taken effect, now or later: a write that timed out, lost
    /// its reply or never returned. The checker lets it take effect at any time after its
    /// invocation, or never.
    Unknown(String),
}

impl Op {
    /// The key of a single-key call (`None` for a listing).
    pub fn key(&self) -> Option<&Key> {
        self.call.key()
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match self.returned {
            Some(t) => format!("{:.6}", t.as_secs_f64()),
            None => "never".to_owned(),
        };
        write!(
            f,
            "client {} [{:.6}s .. {end}] {} -> {}",
            self.client,
            self.invoked.as_secs_f64(),
            self.call,
            self.outcome
        )
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Put { key, value, mode } => {
                write!(f, "put {key} {}", show_value(value))?;
                match mode {
                    PutMode::Overwrite => Ok(()),
                    PutMode::Create => f.write_str(" (create)"),
                    PutMode::Update(v) => write!(f, " (update from {})", show_version(Some(v))),
                }
            }
            Call::Get { key } => write!(f, "get {key}"),
            Call::Head { key } => write!(f, "head {key}"),
            Call::Delete { key, if_match: None } => write!(f, "delete {key}"),
            Call::Delete {
                key,
                if_match: Some(v),
            } => write!(f, "delete {key} if at {}", show_version(Some(v))),
            Call::Watch { key, seen } => write!(f, "watch {key} from {}", show_version(seen.as_ref())),
            Call::List { prefix, start_after } => {
                write!(f, "list {:?}", prefix.as_deref().unwrap_or(""))?;
                match start_after {
                    Some(s) => write!(f, " after {s:?}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Written(v) => write!(f, "ok, {}", show_version(Some(v))),
            Outcome::Read { value, version } => {
                write!(f, "{} at {}", show_value(value), show_version(Some(version)))
            }
            Outcome::Meta(v) => write!(f, "at {}", show_version(Some(v))),
            Outcome::Deleted => f.write_str("deleted"),
            Outcome::Cleared => f.write_str("deleted (or already absent)"),
            Outcome::Watched(v) => write!(f, "now {}", show_version(v.as_ref())),
            Outcome::Listed { entries, complete } => {
                f.write_str("[")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{k} at {}", show_version(Some(v)))?;
                }
                f.write_str(if *complete { "]" } else { " ..cut]" })
            }
            Outcome::NotFound => f.write_str("not found"),
            Outcome::AlreadyExists(v) => write!(f, "already exists at {}", show_version(Some(v))),
            Outcome::Conflict(v) => write!(f, "conflict (found {})", show_version(v.as_ref())),
            Outcome::Failed(why) => write!(f, "failed, no effect: {why}"),
            Outcome::Unknown(why) => write!(f, "outcome unknown: {why}"),
        }
    }
}

fn show_version(v: Option<&Version>) -> String {
    match v {
        None => "absent".to_owned(),
        Some(v) if v.is_empty() => "?".to_owned(),
        Some(v) => format!("v{v}"),
    }
}

fn show_value(value: &Bytes) -> String {
    const SHOWN: usize = 24;
    let text = String::from_utf8_lossy(&value[..value.len().min(SHOWN)]).into_owned();
    if value.len() > SHOWN {
        format!("{text:?}..({} bytes)", value.len())
    } else {
        format!("{text:?}")
    }
}
