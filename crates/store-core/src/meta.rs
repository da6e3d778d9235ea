//! Object metadata.

use std::time::SystemTime;

use crate::key::Key;
use crate::version::Version;

/// What a backend knows about one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The object's key.
    pub key: Key,
    /// Its size in bytes.
    pub size: u64,
    /// Its current version.
    pub version: Version,
    /// When it was last written (the backend's clock; informational only — never use it for
    /// ordering or concurrency control, use `version`).
    pub modified: SystemTime,
}
