//! Deterministic commit ids: SHA-256 over length-prefixed fields.

use sha2::{Digest, Sha256};
use store_core::CommitId;

/// A SHA-256 hasher that frames every field with its length, so that different splits of
/// the same bytes (`("ab", "c")` and `("a", "bc")`) can never produce the same digest.
pub(crate) struct FramedHasher(Sha256);

impl FramedHasher {
    pub(crate) fn new(domain: &[u8]) -> Self {
        let mut h = FramedHasher(Sha256::new());
        h.field(domain);
        h
    }

    /// Adds one field: its length as a big-endian `u64`, then its bytes.
    pub(crate) fn field(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    /// Adds a one-byte tag (fixed width, so it needs no length prefix).
    pub(crate) fn tag(&mut self, tag: u8) {
        self.0.update([tag]);
    }

    pub(crate) fn finish(self) -> CommitId {
        CommitId::new(self.0.finalize().to_vec())
    }
}

/// The id of a whole session: SHA-256 over the `(name, id)` pairs of its committables,
/// each field length-prefixed, in the order given (the committer passes them in ascending
/// name order).
///
/// The same pairs always give the same id, a session without committables has a valid id
/// of its own, and no two different lists of pairs share an id (up to SHA-256 collisions):
/// the length prefixes make every split of the bytes distinct.
///
/// ```
/// use store_commit::session_id;
/// use store_core::CommitId;
///
/// let a = CommitId::new(vec![1, 2]);
/// let b = CommitId::new(vec![3]);
/// let id = session_id([("files", &a), ("records", &b)]);
/// assert_eq!(id, session_id([("files", &a), ("records", &b)]));
/// assert_ne!(id, session_id([("file", &a), ("srecords", &b)]));
/// assert_eq!(session_id([]).as_bytes().len(), 32);
/// ```
pub fn session_id<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a CommitId)>) -> CommitId {
    // No domain prefix here: the seed's id is exactly the framed pairs, and callers that
    // recompute it from the parts should not need to know anything else.
    let mut h = FramedHasher(Sha256::new());
    for (name, id) in pairs {
        h.field(name.as_bytes());
        h.field(id.as_bytes());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_session_is_sha256_of_nothing() {
        assert_eq!(
            session_id([]).to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn splits_and_order_matter() {
        let x = CommitId::new(vec![7]);
        let y = CommitId::new(vec![8]);
        let base = session_id([("a", &x), ("b", &y)]);
        assert_ne!(base, session_id([("b", &y), ("a", &x)]));
        assert_ne!(base, session_id([("a", &y), ("b", &x)]));
        // The same concatenated bytes, split differently.
        let ab = CommitId::new(b"ab".to_vec());
        let b = CommitId::new(b"b".to_vec());
        let e = CommitId::new(Vec::new());
        assert_ne!(session_id([("x", &ab)]), session_id([("xa", &b)]));
        assert_ne!(session_id([("x", &ab)]), session_id([("x", &ab), ("", &e)]));
    }
}
