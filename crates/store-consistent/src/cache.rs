//! A small cache of recently seen object versions, keyed by name.
//!
//! An object version is written once and never changed, and its id is never reused, so a
//! cached `(id, content)` pair can never be stale: if the manifest still names that id,
//! the cached content *is* the current content. This saves `operate` one read per call
//! when the same handle updates a name repeatedly (the common, uncontended case), and a
//! reader one read when it reads a name again that has not changed.

use std::collections::HashMap;

use bytes::Bytes;

/// Contents larger than this are not cached.
pub(crate) const MAX_CACHED: u64 = 64 * 1024;
/// Names remembered at most; the cache is emptied when full.
const MAX_ENTRIES: usize = 256;

/// Name → the last version of it this group handle read or wrote.
#[derive(Debug, Default)]
pub(crate) struct VersionCache {
    entries: parking_lot::Mutex<HashMap<String, (String, Bytes)>>,
}

impl VersionCache {
    /// The content of `name`'s version `id`, if cached.
    pub(crate) fn get(&self, name: &str, id: &str) -> Option<Bytes> {
        match self.entries.lock().get(name) {
            Some((cached, content)) if cached == id => Some(content.clone()),
            _ => None,
        }
    }

    /// Remembers that `name`'s version `id` holds `content`.
    pub(crate) fn put(&self, name: &str, id: &str, content: &Bytes) {
        let mut entries = self.entries.lock();
        if content.len() as u64 > MAX_CACHED {
            entries.remove(name);
            return;
        }
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(name) {
            entries.clear();
        }
        entries.insert(name.to_owned(), (id.to_owned(), content.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_the_same_version_and_stays_bounded() {
        let c = VersionCache::default();
        c.put("a", "1", &Bytes::from("one"));
        assert_eq!(c.get("a", "1").unwrap(), "one");
        assert_eq!(c.get("a", "2"), None);
        c.put("a", "2", &Bytes::from(vec![0; MAX_CACHED as usize + 1]));
        assert_eq!(c.get("a", "1"), None, "a big version evicts the old one");
        assert_eq!(c.get("a", "2"), None);
        for i in 0..MAX_ENTRIES + 10 {
            c.put(&i.to_string(), "v", &Bytes::new());
        }
        assert!(c.entries.lock().len() <= MAX_ENTRIES);
    }
}
