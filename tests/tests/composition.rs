//! Cross-crate compositions. (More arrive as the combinator crates land.)

use std::sync::Arc;

use store_core::{Backend, BackendExt, Key};
use store_memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dyn_backends_compose_through_arc_and_box() {
    let stores: Vec<Arc<dyn Backend>> = vec![
        Arc::new(MemoryStore::new()),
        Arc::new(Box::new(MemoryStore::new())),
    ];
    for (i, s) in stores.iter().enumerate() {
        let key = Key::new(format!("s{i}/k")).unwrap();
        let v = s.create(&key, "x").await.unwrap().version;
        assert!(s.update(&key, "y", v.clone()).await.is_ok());
        assert!(s.update(&key, "z", v).await.unwrap_err().is_conflict());
    }
}
