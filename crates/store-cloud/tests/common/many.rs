//! Many records under `many/`, for what listings cost: written by tests and benches alike.

#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use store_core::{Backend, Key, Record};
use store_record::Records;

/// How many records.
pub const N: usize = 10_000;

/// Their keys, in order: `many/00000` …
pub fn names() -> Vec<String> {
    (0..N).map(|i| format!("many/{i:05}")).collect()
}

/// Writes the [`N`] records through `records`, 64 at a time, with values of `value_len`
/// bytes give or take 4 (so that both size parities occur); every 10th carries an expiry an
/// hour off when `tenth_expiring`.
pub async fn write_records<B: Backend>(records: &Records<B>, value_len: usize, tenth_expiring: bool) {
    let later = SystemTime::now() + Duration::from_secs(3_600);
    futures::stream::iter(names().into_iter().enumerate())
        .map(|(i, name)| {
            let mut record = Record::new(Key::new(name).unwrap(), "v".repeat(value_len + i % 5));
            if tenth_expiring && i % 10 == 0 {
                record = record.with_expiry(later);
            }
            async move { records.put(&record).await.map(drop) }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .expect("write records");
}

/// How many keys of live records `records.list_keys("many/*")` yields.
pub async fn count_keys<B: Backend>(records: &Records<B>) -> usize {
    let keys = records.list_keys("many/*").await.expect("list_keys");
    keys.try_fold(0, |n, _| async move { Ok(n + 1) })
        .await
        .expect("list_keys")
}
