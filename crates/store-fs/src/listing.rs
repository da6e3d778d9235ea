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
//! opened. Symlinks, special files, internal names and names that are not valid key
//! segments (not UTF-8, control characters, backslashes, …) are skipped.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, Dir, FileType};
use rustix::io::Errno;
use store_core::{Error, Key, ListOptions, Meta, Result};

use crate::confine::{is_reserved, open_dir};
use crate::layout::locate;
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

    fn frame(&self, dir: OwnedFd, base: &str) -> Result<Frame> {
        let mut reader = Dir::read_from(&dir).map_err(|e| self.io(e))?;
        let mut items = Vec::new();
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(|e| self.io(e))?;
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

    /// Up to `max` more entries; an empty page means the listing is over.
    pub(crate) fn next_page(&mut self, max: usize) -> Result<Vec<Meta>> {
        if !self.started {
            self.started = true;
            let root = rustix::io::fcntl_dupfd_cloexec(&self.root.fd, 0).map_err(|e| self.io(e))?;
            let frame = self.frame(root, "")?;
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
                    match open_dir(dir, &item.name) {
                        Ok(sub) => {
                            let frame = self.frame(sub, &item.key)?;
                            self.stack.push(frame);
                        }
                        // Removed or replaced since it was read: nothing to list there.
                        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                        Err(e) => return Err(self.io(e)),
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
                    match locate(dir, &item.name).map(|l| l.object().copied()) {
                        Ok(Some(st)) => page.push(stamp::meta(key, &st)),
                        Ok(None) => {}
                        Err(e) => return Err(Error::io("list", &item.key, e.into())),
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
