//! Ordered listing: a depth-first walk that yields keys in global byte order.
//!
//! Sorting each directory's names is not enough: key `a-z` sorts *before* `a/b` (`-` is
//! 0x2D, `/` is 0x2F) but after `a`. So every directory entry becomes sort items: a file
//! `x` is the key `x`; a directory `x` is the key `x` (if it holds an object as
//! `.store-self`) *and*, separately, the subtree `x/` — sorted as the string `"x/"`, which
//! is exactly where all keys `x/…` fall among their siblings. Items are visited in that
//! order, so keys come out sorted without collecting the whole tree.
//!
//! Subtrees that cannot hold a key in range (by `prefix` or `start_after`) are never
//! opened. Symlinks, special files, hard links, internal names and names that are not
//! valid key segments (not UTF-8, control characters, backslashes, …) are skipped. A
//! directory or file that cannot be read is reported as one error item naming it, and the
//! listing goes on: one bad entry never makes the rest of a store unlistable.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, FileType};
use rustix::io::Errno;
use store_core::{Error, Key, ListOptions, Meta, Result};

use crate::confine::{is_reserved, open_dir};
use crate::layout::locate_settled;
use crate::root::Root;
use crate::stamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    File,
    DirSelf,
    Subtree,
}

#[derive(Debug)]
struct Item {
    /// The key (for a subtree: the key prefix ending in `/`).
    key: String,
    name: String,
    kind: ItemKind,
}

#[derive(Debug)]
struct Frame {
    dir: OwnedFd,
    items: Vec<Item>,
    next: usize,
}

/// The state of one listing between pages.
#[derive(Debug)]
pub(crate) struct Walker {
    root: Arc<Root>,
    opts: ListOptions,
    stack: Vec<Frame>,
    started: bool,
}

impl Walker {
    pub(crate) fn new(root: Arc<Root>, opts: ListOptions) -> Walker {
        Walker {
            root,
            opts,
            stack: Vec::new(),
            started: false,
        }
    }

    fn io(&self, e: Errno) -> Error {
        Error::io("list", self.root.path.display(), e.into())
    }

    fn frame(&self, dir: OwnedFd, base: &str) -> rustix::io::Result<Frame> {
        let mut reader = Dir::read_from(&dir)?;
        let mut items = Vec::new();
        while let Some(entry) = reader.read() {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." || is_reserved(name) {
                continue;
            }
            let ty = match entry.file_type() {
                FileType::Unknown => match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode as _),
                    Err(_) => continue,
                },
                ty => ty,
            };
            let key = format!("{base}{name}");
            match ty {
                FileType::RegularFile => items.push(Item {
                    key,
                    name: name.to_owned(),
                    kind: ItemKind::File,
                }),
                FileType::Directory => {
                    items.push(Item {
                        key: format!("{key}/"),
                        name: name.to_owned(),
                        kind: ItemKind::Subtree,
                    });
                    items.push(Item {
                        key,
                        name: name.to_owned(),
                        kind: ItemKind::DirSelf,
                    });
                }
                _ => {} // symlinks and special files are not objects
            }
        }
        items.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(Frame { dir, items, next: 0 })
    }

    /// Up to `max` more entries; an empty page means the listing is over. A directory or
    /// file that cannot be read (permissions, I/O) is one error item naming it, and the
    /// walk goes on with the rest; only a root that cannot be read ends the listing.
    pub(crate) fn next_page(&mut self, max: usize) -> Result<Vec<Result<Meta>>> {
        if !self.started {
            self.started = true;
            let root = rustix::io::fcntl_dupfd_cloexec(&self.root.fd, 0).map_err(|e| self.io(e))?;
            let frame = self.frame(root, "").map_err(|e| self.io(e))?;
            self.stack.push(frame);
        }
        let mut page = Vec::new();
        while page.len() < max {
            let Some(top) = self.stack.last_mut() else { break };
            let Some(item) = top.items.get_mut(top.next) else {
                self.stack.pop();
                continue;
            };
            top.next += 1;
            let item = Item {
                key: std::mem::take(&mut item.key),
                name: std::mem::take(&mut item.name),
                kind: item.kind,
            };
            if let Some(pre) = self.opts.prefix.as_deref() {
                // Items are sorted: once one is past the prefix, so is the rest of the frame.
                if item.key.as_str() > pre && !item.key.starts_with(pre) {
                    top.next = top.items.len();
                    continue;
                }
            }
            let dir = top.dir.as_fd();
            match item.kind {
                ItemKind::Subtree => {
                    if !wants_subtree(&self.opts, &item.key) {
                        continue;
                    }
                    let unreadable = |e: Errno| Error::io("list", &item.key, e.into());
                    match open_dir(dir, &item.name) {
                        Ok(sub) => match self.frame(sub, &item.key) {
                            Ok(frame) => self.stack.push(frame),
                            Err(e) => page.push(Err(unreadable(e))),
                        },
                        // Removed or replaced since it was read: nothing to list there.
                        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                        Err(e) => page.push(Err(unreadable(e))),
                    }
                }
                ItemKind::File | ItemKind::DirSelf => {
                    if !self.opts.matches(&item.key) {
                        continue;
                    }
                    let Ok(key) = Key::new(item.key.as_str()) else {
                        tracing::debug!(name = %item.key, "list: skipped a file whose name is not a valid key");
                        continue;
                    };
                    // `locate` rather than the type read from the directory: a file may have
                    // become a directory (its object moved to `.store-self`) meanwhile.
                    let found = locate_settled(&self.root.locks, &item.key, dir, &item.name)
                        .and_then(|l| l.version(dir, &item.name, self.root.ceiling));
                    match found {
                        Ok(Some((version, st))) => page.push(Ok(stamp::meta(key, &st, version))),
                        Ok(None) => {}
                        // A directory that cannot be opened is reported once, by its subtree
                        // item, which is always visited when this key is in range.
                        Err(Errno::ACCESS | Errno::PERM) if item.kind == ItemKind::DirSelf => {}
                        Err(e) => page.push(Err(Error::io("list", &item.key, e.into()))),
                    }
                }
            }
        }
        Ok(page)
    }
}

/// Whether a subtree with key prefix `p` (ending in `/`) may hold keys in range.
fn wants_subtree(opts: &ListOptions, p: &str) -> bool {
    let by_prefix = opts
        .prefix
        .as_deref()
        .is_none_or(|pre| p.starts_with(pre) || pre.starts_with(p));
    let by_after = opts
        .start_after
        .as_deref()
        .is_none_or(|after| p > after || after.starts_with(p));
    by_prefix && by_after
}
