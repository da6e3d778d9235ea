//! How writes succeed (`WriteMode`) and where reads go (`ReadPolicy`).

/// When a fan-out write counts as successful.
///
/// | mode         | succeeds when                                   | a failed backend          |
/// |--------------|-------------------------------------------------|---------------------------|
/// | `All`        | every backend committed                         | aborts the whole write    |
/// | `BestEffort` | at least one backend committed                  | is reported in the report |
/// | `Quorum`     | a strict majority of the *configured* backends  | is reported in the report |
///
/// See the crate documentation for what each mode guarantees at each failure point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum WriteMode {
    /// Every backend must commit. A failure before the commit phase aborts every backend's
    /// writer, so no backend shows the new object.
    #[default]
    All,
    /// At least one backend must commit; the failures come back in the
    /// [`WriteReport`](crate::WriteReport), never silently dropped.
    BestEffort,
    /// A strict majority of the configured backends must commit (`n / 2 + 1`). A
    /// [`MultiWriter`](crate::MultiWriter) write returns as soon as that majority committed
    /// and the others finish in the background; [`Multi`](crate::Multi)'s `Backend::put`
    /// waits for their answers to name them in the version (see the crate documentation).
    Quorum,
}

impl WriteMode {
    /// How many of `backends` configured backends must commit for a write to succeed:
    /// `n` for `All`, `1` for `BestEffort`, `n / 2 + 1` for `Quorum` (1→1, 2→2, 3→2, 4→3, 5→3).
    ///
    /// ```
    /// use store_multi::WriteMode;
    ///
    /// let q: Vec<usize> = (1..=5).map(|n| WriteMode::Quorum.required(n)).collect();
    /// assert_eq!(q, [1, 2, 2, 3, 3]);
    /// assert_eq!(WriteMode::All.required(3), 3);
    /// assert_eq!(WriteMode::BestEffort.required(3), 1);
    /// ```
    pub fn required(self, backends: usize) -> usize {
        match self {
            WriteMode::All => backends,
            WriteMode::BestEffort => backends.min(1),
            WriteMode::Quorum => backends / 2 + 1,
        }
    }
}

/// Which backend serves the body of a read.
///
/// Whatever the policy, the *version* a read reports is assembled from every backend (see
/// the crate documentation on composite versions); the policy chooses where the bytes come
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReadPolicy {
    /// The first backend, in configuration order, that holds the object and answers.
    /// Errors (and a copy that changed meanwhile) fall through to the next backend.
    #[default]
    InOrder,
    /// Ask every backend that holds the object at once; the first answer wins and the
    /// other requests are cancelled.
    Fastest,
}
