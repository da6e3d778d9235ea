//! Exports the `Metrics` layer's figures in Prometheus' text format.
//!
//! `cargo run -p store-layers --example prometheus` runs a few operations on a stack over
//! a `MemoryStore` and prints what a Prometheus server would scrape. A real program serves
//! `handle.render()` on its metrics endpoint (or enables the exporter's own HTTP listener).

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use store_core::{BackendExt, Key};
use store_layers::{Metrics, Retry, Timeout};
use store_memory::MemoryStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new().install_recorder()?;

    let store = MemoryStore::new()
        .layer(Timeout::new(Duration::from_secs(5)))
        .layer(Metrics::new("primary"))
        .layer(Retry::default());
    for i in 0..10 {
        store.put_bytes(&Key::new(format!("orders/{i}"))?, "{}").await?;
    }
    store.get_bytes(&Key::new("orders/3")?).await?;
    let missing = store.get_bytes(&Key::new("orders/none")?).await;
    assert!(missing.is_err());

    print!("{}", handle.render());
    Ok(())
}
