//! Trace, checked with a subscriber that captures every span and event.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use store_core::{Backend, BackendExt, Backoff, Key, ListOptions, PutOptions};
use store_layers::{Limit, Retry, Trace};
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span as captured: its fields (as text) and the events recorded in it.
#[derive(Debug, Default, Clone)]
struct Captured {
    fields: BTreeMap<String, String>,
    events: Vec<(Level, String)>,
}

/// Captures the spans named "store", in creation order.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Id, Captured)>>>);

impl Capture {
    fn spans(&self) -> Vec<Captured> {
        self.0.lock().unwrap().iter().map(|(_, s)| s.clone()).collect()
    }

    fn with(&self, id: &Id, f: impl FnOnce(&mut Captured)) {
        if let Some((_, s)) = self.0.lock().unwrap().iter_mut().rev().find(|(i, _)| i == id) {
            f(s);
        }
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() == "store" {
            let mut span = Captured::default();
            attrs.record(&mut Fields(&mut span.fields));
            self.0.lock().unwrap().push((id.clone(), span));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        self.with(id, |s| values.record(&mut Fields(&mut s.fields)));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(parent) = ctx.event_span(event) else {
            return;
        };
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        self.with(&parent.id(), |s| {
            s.events.push((*event.metadata().level(), message))
        });
    }
}

/// Runs `test` with the capture as this thread's subscriber (the runtime is single-threaded).
async fn captured<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) -> Capture {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    test().await;
    capture
}

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn fast_retry() -> Retry {
    Retry::new(Backoff::new(Duration::from_micros(10), Duration::from_micros(10)).with_max_attempts(5))
}

fn field<'a>(span: &'a Captured, name: &str) -> &'a str {
    span.fields
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no field {name} in {span:?}"))
}

#[tokio::test(flavor = "current_thread")]
async fn one_span_per_attempt_under_retry() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = faulty.clone().layer(Trace::new("disk")).layer(fast_retry());
    let meta = faulty.inner().put_bytes(&k("a/b"), "hello").await.unwrap();
    faulty.inject(Rule::new(FaultOp::Get, Fault::FailRetryable).times(2));
    let capture = captured(|| async {
        assert_eq!(store.get_bytes(&k("a/b")).await.unwrap(), "hello");
    })
    .await;

    let spans = capture.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    for (i, span) in spans.iter().enumerate() {
        assert_eq!(field(span, "op"), "get");
        assert_eq!(field(span, "key"), "a/b");
        assert_eq!(field(span, "backend"), "disk");
        assert_eq!(field(span, "attempt"), (i + 1).to_string());
    }
    for failed in &spans[..2] {
        assert_eq!(field(failed, "outcome"), "backend");
        assert_eq!(failed.events.len(), 1);
        assert_eq!(failed.events[0].0, Level::WARN);
    }
    let ok = &spans[2];
    assert_eq!(field(ok, "outcome"), "ok");
    assert_eq!(field(ok, "bytes"), "5");
    assert_eq!(field(ok, "version"), meta.version.to_string());
    assert_eq!(ok.events, [(Level::DEBUG, "done".to_owned())]);
}

#[tokio::test(flavor = "current_thread")]
async fn a_span_above_retry_counts_the_attempts() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = faulty.clone().layer(fast_retry()).layer(Trace::new("outer"));
    faulty.inject(Rule::new(FaultOp::Put, Fault::FailRetryable).times(3));
    let capture = captured(|| async {
        store.put_bytes(&k("k"), "1234").await.unwrap();
    })
    .await;
    let spans = capture.spans();
    assert_eq!(spans.len(), 1);
    let put = &spans[0];
    assert_eq!(field(put, "attempt"), "4");
    assert_eq!(field(put, "bytes"), "4");
    assert_eq!(field(put, "outcome"), "ok");
    assert!(!field(put, "version").is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn every_operation_has_its_span() {
    let store = MemoryStore::new().layer(Trace::new("mem"));
    let capture = captured(|| async {
        let v = store.create(&k("x/1"), "abc").await.unwrap().version;
        store.head(&k("x/1")).await.unwrap();
        store.watch(&k("x/1"), None).await.unwrap();
        let mut w = store.writer(&k("x/2"), PutOptions::default()).await.unwrap();
        w.write("de".into()).await.unwrap();
        w.write("f".into()).await.unwrap();
        w.close().await.unwrap();
        let n = store
            .list(ListOptions::default().with_prefix("x/"))
            .try_fold(0, |n, _| async move { Ok(n + 1) })
            .await
            .unwrap();
        assert_eq!(n, 2);
        store.delete_if(&k("x/1"), v).await.unwrap();
        assert!(store.get_bytes(&k("x/1")).await.is_err());
    })
    .await;
    let spans = capture.spans();
    let ops: Vec<&str> = spans.iter().map(|s| field(s, "op")).collect();
    assert_eq!(
        ops,
        ["put", "head", "watch", "writer", "close", "list", "delete", "get"]
    );
    let close = &spans[4];
    assert_eq!((field(close, "key"), field(close, "bytes")), ("x/2", "3"));
    let list = &spans[5];
    assert_eq!(
        (field(list, "key"), field(list, "items"), field(list, "outcome")),
        ("x/", "2", "ok")
    );
    let get = &spans[7];
    assert_eq!(field(get, "outcome"), "not_found");
    assert_eq!(get.events[0].0, Level::WARN);
    assert!(get.events.iter().all(|(level, _)| *level != Level::DEBUG));
}

#[tokio::test(flavor = "current_thread")]
async fn time_waited_for_a_permit_shows_in_the_span() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = Arc::new(faulty.clone().layer(Limit::new(1)).layer(Trace::new("limited")));
    faulty.inject(Rule::new(FaultOp::Put, Fault::Hang).times(1));
    let capture = captured(|| async {
        let holder = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.put_bytes(&k("first"), "1").await })
        };
        tokio::task::yield_now().await; // the first put takes the only permit and hangs
        let second = {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.put_bytes(&k("second"), "2").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        faulty.release();
        holder.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
    })
    .await;
    let spans = capture.spans();
    let second = spans.iter().find(|s| field(s, "key") == "second").unwrap();
    let waited: u64 = field(second, "limit_wait_us").parse().unwrap();
    assert!(
        waited >= 20_000,
        "waited {waited} µs behind a call held for 20 ms"
    );
}
