//! What a backend can do and guarantee.

/// Flags telling what a backend supports and guarantees. Composites (fan-out, replicas)
/// report what the *composite* really guarantees, usually the [`intersection`](Self::intersection)
/// of their parts.
///
/// Build from [`Capabilities::NONE`] with the `with_*` methods, so that flags added later
/// default to "not supported" (the struct is `#[non_exhaustive]`):
///
/// ```
/// use store_core::Capabilities;
///
/// let caps = Capabilities::NONE.with_create(true).with_update(true);
/// assert!(caps.create && caps.update && !caps.native_watch);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// `PutMode::Create` is atomic (exactly one of concurrent creators wins).
    pub create: bool,
    /// `PutMode::Update(version)` — compare-and-swap — is atomic.
    pub update: bool,
    /// `DeleteOptions::if_match` is atomic.
    pub conditional_delete: bool,
    /// `GetOptions::range` is served without reading the whole object.
    pub range_reads: bool,
    /// `writer()` streams to the store instead of buffering the whole object in memory.
    pub streaming_writes: bool,
    /// `watch` is woken by changes instead of polling.
    pub native_watch: bool,
    /// A successful put survives a power loss.
    pub durable: bool,
    /// Other processes (or machines) see the same data, and CAS holds across them.
    pub shared: bool,
    /// A version always names the same content: every read that reports version `v` of a
    /// key returns the same bytes. Caches keyed by version rely on it (store-record's and
    /// store-consistent's). Not so for a fan-out whose copies can differ under one
    /// composite version after a tolerated failure.
    pub stable_versions: bool,
    /// The largest object accepted, if limited.
    pub max_object_size: Option<u64>,
}

macro_rules! flag_setters {
    ($($(#[$doc:meta])* $name:ident => $field:ident,)*) => {
        $(
            $(#[$doc])*
            pub const fn $name(mut self, yes: bool) -> Capabilities {
                self.$field = yes;
                self
            }
        )*
    };
}

impl Capabilities {
    /// Nothing supported.
    pub const NONE: Capabilities = Capabilities {
        create: false,
        update: false,
        conditional_delete: false,
        range_reads: false,
        streaming_writes: false,
        native_watch: false,
        durable: false,
        shared: false,
        stable_versions: false,
        max_object_size: None,
    };

    flag_setters! {
        /// Sets [`create`](Self::create).
        with_create => create,
        /// Sets [`update`](Self::update).
        with_update => update,
        /// Sets [`conditional_delete`](Self::conditional_delete).
        with_conditional_delete => conditional_delete,
        /// Sets [`range_reads`](Self::range_reads).
        with_range_reads => range_reads,
        /// Sets [`streaming_writes`](Self::streaming_writes).
        with_streaming_writes => streaming_writes,
        /// Sets [`native_watch`](Self::native_watch).
        with_native_watch => native_watch,
        /// Sets [`durable`](Self::durable).
        with_durable => durable,
        /// Sets [`shared`](Self::shared).
        with_shared => shared,
        /// Sets [`stable_versions`](Self::stable_versions).
        with_stable_versions => stable_versions,
    }
    /// Sets [`max_object_size`](Self::max_object_size).
    pub const fn with_max_object_size(mut self, limit: Option<u64>) -> Capabilities {
        self.max_object_size = limit;
        self
    }

    /// What two backends both guarantee (flags ANDed, the smaller size limit).
    pub fn intersection(self, other: Capabilities) -> Capabilities {
        Capabilities {
            create: self.create && other.create,
            update: self.update && other.update,
            conditional_delete: self.conditional_delete && other.conditional_delete,
            range_reads: self.range_reads && other.range_reads,
            streaming_writes: self.streaming_writes && other.streaming_writes,
            native_watch: self.native_watch && other.native_watch,
            durable: self.durable && other.durable,
            shared: self.shared && other.shared,
            stable_versions: self.stable_versions && other.stable_versions,
            max_object_size: match (self.max_object_size, other.max_object_size) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersection_ands_flags_and_takes_smaller_limit() {
        let a = Capabilities {
            create: true,
            update: true,
            max_object_size: Some(10),
            ..Capabilities::NONE
        };
        let b = Capabilities {
            create: true,
            durable: true,
            max_object_size: None,
            ..Capabilities::NONE
        };
        let c = a.intersection(b);
        assert!(c.create && !c.update && !c.durable);
        assert_eq!(c.max_object_size, Some(10));
        let d = a.intersection(Capabilities {
            max_object_size: Some(5),
            ..Capabilities::NONE
        });
        assert_eq!(d.max_object_size, Some(5));
        let stable = Capabilities {
            stable_versions: true,
            ..Capabilities::NONE
        };
        assert!(stable.intersection(stable).stable_versions);
        assert!(!stable.intersection(a).stable_versions);
        assert_eq!(Capabilities::default(), Capabilities::NONE);
    }
}
