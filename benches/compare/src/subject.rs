//! One interface over our stores and the peers, so every workload runs the same code on each.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, path::Path};
use parking_lot_free::Versions;
use store_core::{Backend, BackendExt, GetOptions, Key, ListOptions, PutOptions, Version};

/// A store under test. `None` from an operation means "this store cannot do that".
pub trait Subject: Clone + Send + Sync + 'static {
    /// Display name.
    fn name(&self) -> String;
    /// Overwrite `key`.
    fn put(&self, key: String, data: Bytes) -> impl Future<Output = ()> + Send;
    /// Read all of `key`.
    fn get(&self, key: String) -> impl Future<Output = Bytes> + Send;
    /// Create-if-absent (`key` is always fresh).
    fn create(&self, key: String, data: Bytes) -> impl Future<Output = Option<()>> + Send;
    /// Compare-and-swap from the version this subject last wrote to `key`.
    fn cas(&self, key: String, data: Bytes) -> impl Future<Output = Option<()>> + Send;
    /// Count the keys under `prefix`.
    fn list(&self, prefix: String) -> impl Future<Output = usize> + Send;
}

mod parking_lot_free {
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// The last version written per key, for CAS loops.
    pub struct Versions<V>(Mutex<HashMap<String, V>>);

    impl<V> Default for Versions<V> {
        fn default() -> Self {
            Versions(Mutex::new(HashMap::new()))
        }
    }

    impl<V: Clone> Versions<V> {
        pub fn get(&self, k: &str) -> Option<V> {
            self.0.lock().unwrap().get(k).cloned()
        }
        pub fn set(&self, k: String, v: V) {
            self.0.lock().unwrap().insert(k, v);
        }
    }
}

/// Any of our backends.
pub struct Ours<B> {
    pub name: &'static str,
    pub store: Arc<B>,
    versions: Arc<Versions<Version>>,
}

impl<B> Clone for Ours<B> {
    fn clone(&self) -> Self {
        Ours {
            name: self.name,
            store: Arc::clone(&self.store),
            versions: Arc::clone(&self.versions),
        }
    }
}

impl<B: Backend> Ours<B> {
    pub fn new(name: &'static str, store: B) -> Self {
        Ours {
            name,
            store: Arc::new(store),
            versions: Arc::default(),
        }
    }
}

fn key(k: &str) -> Key {
    Key::new(k).expect("valid key")
}

impl<B: Backend> Subject for Ours<B> {
    fn name(&self) -> String {
        self.name.to_owned()
    }
    async fn put(&self, k: String, data: Bytes) {
        let meta = self
            .store
            .put(&key(&k), data, PutOptions::default())
            .await
            .expect("put");
        self.versions.set(k, meta.version);
    }
    async fn get(&self, k: String) -> Bytes {
        self.store
            .get(&key(&k), GetOptions::default())
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body")
    }
    async fn create(&self, k: String, data: Bytes) -> Option<()> {
        self.store.create(&key(&k), data).await.expect("create");
        Some(())
    }
    async fn cas(&self, k: String, data: Bytes) -> Option<()> {
        let v = match self.versions.get(&k) {
            Some(v) => v,
            None => self.store.head(&key(&k)).await.expect("head").version,
        };
        let meta = self
            .store
            .put(&key(&k), data, PutOptions::update(v))
            .await
            .expect("cas");
        self.versions.set(k, meta.version);
        Some(())
    }
    async fn list(&self, prefix: String) -> usize {
        self.store
            .list(ListOptions::default().with_prefix(prefix))
            .try_fold(0, |n, _| async move { Ok(n + 1) })
            .await
            .expect("list")
    }
}

/// An `object_store` store.
#[derive(Clone)]
pub struct ObjStore {
    pub name: &'static str,
    pub store: Arc<dyn ObjectStore>,
    pub cas: bool,
    versions: Arc<Versions<object_store::UpdateVersion>>,
}

impl ObjStore {
    pub fn new(name: &'static str, store: Arc<dyn ObjectStore>, cas: bool) -> Self {
        ObjStore {
            name,
            store,
            cas,
            versions: Arc::default(),
        }
    }
}

impl Subject for ObjStore {
    fn name(&self) -> String {
        self.name.to_owned()
    }
    async fn put(&self, k: String, data: Bytes) {
        let r = self
            .store
            .put(&Path::from(k.as_str()), PutPayload::from(data))
            .await
            .expect("put");
        self.versions.set(k, r.into());
    }
    async fn get(&self, k: String) -> Bytes {
        self.store
            .get(&Path::from(k.as_str()))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body")
    }
    async fn create(&self, k: String, data: Bytes) -> Option<()> {
        let opts = object_store::PutOptions::from(object_store::PutMode::Create);
        self.store
            .put_opts(&Path::from(k.as_str()), data.into(), opts)
            .await
            .expect("create");
        Some(())
    }
    async fn cas(&self, k: String, data: Bytes) -> Option<()> {
        if !self.cas {
            return None;
        }
        let v = self.versions.get(&k).expect("cas after put");
        let opts = object_store::PutOptions::from(object_store::PutMode::Update(v));
        let r = self
            .store
            .put_opts(&Path::from(k.as_str()), data.into(), opts)
            .await
            .expect("cas");
        self.versions.set(k, r.into());
        Some(())
    }
    async fn list(&self, prefix: String) -> usize {
        let prefix = Path::from(prefix.trim_end_matches('/'));
        self.store
            .list(Some(&prefix))
            .try_fold(0, |n, _| async move { Ok(n + 1) })
            .await
            .expect("list")
    }
}

/// An OpenDAL operator.
#[derive(Clone)]
pub struct Dal {
    pub name: &'static str,
    pub op: opendal::Operator,
}

impl Subject for Dal {
    fn name(&self) -> String {
        self.name.to_owned()
    }
    async fn put(&self, k: String, data: Bytes) {
        self.op.write(&k, data).await.expect("put");
    }
    async fn get(&self, k: String) -> Bytes {
        self.op.read(&k).await.expect("get").to_bytes()
    }
    async fn create(&self, k: String, data: Bytes) -> Option<()> {
        if !self.op.info().capability().write_with_if_not_exists {
            return None;
        }
        self.op
            .write_with(&k, data)
            .if_not_exists(true)
            .await
            .expect("create");
        Some(())
    }
    async fn cas(&self, _k: String, _data: Bytes) -> Option<()> {
        // OpenDAL's memory and fs services have no conditional overwrite.
        if !self.op.info().capability().write_with_if_match {
            return None;
        }
        None
    }
    async fn list(&self, prefix: String) -> usize {
        self.op
            .list_with(&prefix)
            .recursive(true)
            .await
            .expect("list")
            .iter()
            .filter(|e| e.metadata().is_file())
            .count()
    }
}
