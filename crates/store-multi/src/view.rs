//! A snapshot of one key on every backend, taken with concurrent `head`s.

use std::sync::Arc;

use futures::future::join_all;
use store_core::{Backend, Error, Key, Meta, MultiError, Result, Version};

use crate::composite::{self, Component};

/// What each backend holds at a key. Taken concurrently, so while a write is in flight it
/// may mix old and new copies; a composite version observed that way only ever makes a
/// later conditional write fail with `Conflict`, never succeed wrongly.
pub(crate) struct View {
    pub(crate) comps: Vec<Component>,
    pub(crate) metas: Vec<Option<Meta>>,
    pub(crate) errors: Vec<(usize, Error)>,
}

impl View {
    pub(crate) async fn read(backends: &[Arc<dyn Backend>], key: &Key) -> View {
        let answers = join_all(backends.iter().map(|b| (**b).head(key))).await;
        let mut view = View {
            comps: Vec::with_capacity(answers.len()),
            metas: Vec::with_capacity(answers.len()),
            errors: Vec::new(),
        };
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(meta) => {
                    view.comps.push(Component::Present(meta.version.clone()));
                    view.metas.push(Some(meta));
                }
                Err(e) if e.is_not_found() => {
                    view.comps.push(Component::Absent);
                    view.metas.push(None);
                }
                Err(e) => {
                    view.comps.push(Component::Unknown);
                    view.metas.push(None);
                    view.errors.push((i, e));
                }
            }
        }
        view
    }

    pub(crate) fn any_present(&self) -> bool {
        self.metas.iter().any(Option::is_some)
    }

    pub(crate) fn version(&self) -> Version {
        composite::encode(&self.comps)
    }

    /// The key's metadata with the composite version: size and time from the first
    /// backend (in order) that holds it. `NotFound` if every backend that answered lacks
    /// it; the backends' errors if none answered.
    pub(crate) fn meta(self, key: &Key, op: &'static str) -> Result<(Meta, View)> {
        if let Some(first) = self.metas.iter().flatten().next() {
            let meta = Meta {
                key: key.clone(),
                size: first.size,
                version: self.version(),
                modified: first.modified,
            };
            return Ok((meta, self));
        }
        if self.errors.len() == self.comps.len() {
            return Err(MultiError::new(self.errors).into());
        }
        Err(Error::NotFound {
            op,
            key: key.to_string(),
        })
    }
}
