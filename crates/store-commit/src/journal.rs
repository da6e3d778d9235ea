//! What `Staged` writes to its backend: the journal of a session being applied, and the
//! marker of a session it applied.
//!
//! Both are single objects, so each is written atomically by any `Backend`. The encoding is
//! a magic line followed by length-prefixed fields (big-endian `u64` lengths); decoding
//! never panics and reports damage as [`Error::Corrupt`] naming the object.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use store_core::{CommitId, Error, IdempotencyKey, Key, Result};

use crate::commit_id::FramedHasher;

const JOURNAL_MAGIC: &[u8] = b"store-commit journal 1\n";
const MARKER_MAGIC: &[u8] = b"store-commit marker 1\n";
const TAG_DELETE: u8 = 0;
const TAG_PUT: u8 = 1;

/// One staged change to a key. Only the last change staged for a key counts, so a session's
/// changes are a map and each key is written once when they are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Put(Bytes),
    Delete,
}

/// A session's changes, in key order (the order they are hashed and applied in).
pub(crate) type Changes = BTreeMap<Key, Change>;

/// The id of a set of changes: SHA-256 over each key, a tag and the value, framed.
pub(crate) fn changes_id(changes: &Changes) -> CommitId {
    let mut h = FramedHasher::new(b"store-commit staged changes 1");
    for (key, change) in changes {
        h.field(key.as_str().as_bytes());
        match change {
            Change::Put(data) => {
                h.tag(TAG_PUT);
                h.field(data);
            }
            Change::Delete => h.tag(TAG_DELETE),
        }
    }
    h.finish()
}

/// The intent record of a session: written before the first change is applied, removed
/// after the marker is written. Finding one means a commit was interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Journal {
    pub(crate) session: IdempotencyKey,
    pub(crate) changes: Changes,
}

impl Journal {
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_slice(JOURNAL_MAGIC);
        put_field(&mut buf, self.session.as_bytes());
        buf.put_u64(self.changes.len() as u64);
        for (key, change) in &self.changes {
            put_field(&mut buf, key.as_str().as_bytes());
            match change {
                Change::Put(data) => {
                    buf.put_u8(TAG_PUT);
                    put_field(&mut buf, data);
                }
                Change::Delete => buf.put_u8(TAG_DELETE),
            }
        }
        buf.freeze()
    }

    /// Decodes the journal stored at `at`.
    pub(crate) fn decode(at: &Key, bytes: &Bytes) -> Result<Journal> {
        let mut r = Reader::new(at, bytes, JOURNAL_MAGIC)?;
        let session = IdempotencyKey::new(r.field()?);
        let count = r.u64()?;
        let mut changes = Changes::new();
        for _ in 0..count {
            let raw = r.field()?;
            let name = std::str::from_utf8(&raw).map_err(|_| r.corrupt("a key is not UTF-8"))?;
            let key = Key::new(name).map_err(|e| r.corrupt(format!("invalid key: {e}")))?;
            let change = match r.u8()? {
                TAG_PUT => Change::Put(r.field()?),
                TAG_DELETE => Change::Delete,
                t => return Err(r.corrupt(format!("unknown change tag {t}"))),
            };
            if changes.insert(key, change).is_some() {
                return Err(r.corrupt(format!("key {name:?} appears twice")));
            }
        }
        r.end()?;
        Ok(Journal { session, changes })
    }
}

/// The proof that a session was applied, holding the id its commit returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub(crate) session: IdempotencyKey,
    pub(crate) id: CommitId,
}

impl Marker {
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_slice(MARKER_MAGIC);
        put_field(&mut buf, self.session.as_bytes());
        put_field(&mut buf, self.id.as_bytes());
        buf.freeze()
    }

    /// Decodes the marker stored at `at`.
    pub(crate) fn decode(at: &Key, bytes: &Bytes) -> Result<Marker> {
        let mut r = Reader::new(at, bytes, MARKER_MAGIC)?;
        let session = IdempotencyKey::new(r.field()?);
        let id = CommitId::new(r.field()?);
        r.end()?;
        Ok(Marker { session, id })
    }
}

fn put_field(buf: &mut BytesMut, bytes: &[u8]) {
    buf.put_u64(bytes.len() as u64);
    buf.put_slice(bytes);
}

/// A cursor over an encoded object that turns every shortfall into `Error::Corrupt`.
struct Reader<'a> {
    at: &'a Key,
    bytes: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(at: &'a Key, bytes: &'a Bytes, magic: &[u8]) -> Result<Self> {
        let r = Reader { at, bytes, pos: 0 };
        if !bytes.starts_with(magic) {
            return Err(r.corrupt(format!(
                "does not start with {:?}",
                String::from_utf8_lossy(magic).trim_end()
            )));
        }
        Ok(Reader {
            pos: magic.len(),
            ..r
        })
    }

    fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            key: self.at.to_string(),
            reason: format!("{} (at byte {})", reason.into(), self.pos),
        }
    }

    fn take(&mut self, n: u64) -> Result<Bytes> {
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(self.corrupt(format!("truncated: needs {n} more bytes, {left} left")));
        }
        let n = n as usize;
        let out = self.bytes.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_be_bytes(a))
    }

    fn field(&mut self) -> Result<Bytes> {
        let n = self.u64()?;
        self.take(n)
    }

    fn end(&self) -> Result<()> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(self.corrupt(format!(
                "{} unexpected trailing bytes",
                self.bytes.len() - self.pos
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(s: &str) -> Key {
        Key::new(s).unwrap()
    }

    fn sample() -> Journal {
        let mut changes = Changes::new();
        changes.insert(k("a"), Change::Put(Bytes::from_static(b"1")));
        changes.insert(k("b/c"), Change::Delete);
        changes.insert(k("d"), Change::Put(Bytes::new()));
        Journal {
            session: IdempotencyKey::from("s-1"),
            changes,
        }
    }

    #[test]
    fn journal_and_marker_round_trip() {
        let j = sample();
        assert_eq!(Journal::decode(&k("j"), &j.encode()).unwrap(), j);
        let m = Marker {
            session: IdempotencyKey::from(vec![0, 255]),
            id: changes_id(&j.changes),
        };
        assert_eq!(Marker::decode(&k("m"), &m.encode()).unwrap(), m);
    }

    #[test]
    fn every_truncation_and_bad_magic_is_corrupt_naming_the_object() {
        let enc = sample().encode();
        for n in 0..enc.len() {
            let e = Journal::decode(&k("x/journal"), &enc.slice(..n)).unwrap_err();
            assert!(
                matches!(&e, Error::Corrupt { key, .. } if key == "x/journal"),
                "{n}: {e}"
            );
        }
        let mut long = enc.to_vec();
        long.push(0);
        assert!(Journal::decode(&k("j"), &Bytes::from(long)).is_err());
        let e = Marker::decode(&k("m"), &enc).unwrap_err();
        assert!(e.to_string().contains("marker"), "{e}");
    }

    #[test]
    fn ids_depend_on_every_part_of_the_changes() {
        let base = sample();
        let id = changes_id(&base.changes);
        assert_eq!(id, changes_id(&sample().changes));
        let mut other = base.changes.clone();
        other.insert(k("b/c"), Change::Put(Bytes::new()));
        assert_ne!(id, changes_id(&other));
        let mut other = base.changes.clone();
        other.remove(&k("d"));
        assert_ne!(id, changes_id(&other));
        assert_ne!(changes_id(&Changes::new()), id);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut with_magic = JOURNAL_MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = Journal::decode(&k("j"), &Bytes::from(with_magic));
            let _ = Marker::decode(&k("m"), &Bytes::from(bytes));
        }
    }
}
