//! Checks of streaming writers: atomic close, abort and drop, put modes at close, 64 MiB.

use super::*;

pub(super) async fn writer_commits_atomically_on_close(b: Arc<dyn Backend>) {
    let k = key("writer/atomic");
    put(&*b, &k, "old").await;
    let fresh = key("writer/fresh");
    let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
    let mut w2 = b.writer(&fresh, PutOptions::default()).await.unwrap();
    for i in 0..5 {
        w.write(Bytes::from(format!("part{i};"))).await.unwrap();
        w2.write(Bytes::from(format!("part{i};"))).await.unwrap();
        assert_eq!(
            get_all(&*b, &k).await,
            "old",
            "a writer's chunks became visible before close"
        );
        expect_kind(
            b.head(&fresh).await,
            ErrorKind::NotFound,
            "head of a key being written",
        );
        assert_eq!(
            listed(&*b, ListOptions::default()).await,
            ["writer/atomic"],
            "listing shows an unfinished write"
        );
    }
    w.write(Bytes::new()).await.unwrap();
    let m = w.close().await.unwrap();
    assert_eq!(m.size, 30);
    assert_eq!(get_all(&*b, &k).await, "part0;part1;part2;part3;part4;");
    assert_eq!(b.head(&k).await.unwrap().version, m.version);
    w2.close().await.unwrap();
    assert_eq!(get_all(&*b, &fresh).await, "part0;part1;part2;part3;part4;");
    let empty = b
        .writer(&key("writer/empty"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(empty.close().await.unwrap().size, 0);
    assert_eq!(get_all(&*b, &key("writer/empty")).await, "");
}

pub(super) async fn writer_drop_and_abort_leave_no_trace(b: Arc<dyn Backend>) {
    let k = key("writer/dropped");
    put(&*b, &k, "old").await;
    let v = b.head(&k).await.unwrap().version;
    {
        let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
        w.write(Bytes::from_static(b"never visible")).await.unwrap();
    }
    let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"never visible")).await.unwrap();
    w.abort().await.unwrap();
    let fresh = key("writer/never");
    let mut w = b.writer(&fresh, PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"x")).await.unwrap();
    drop(w);
    // Give a backend that cleans up in the background a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get_all(&*b, &k).await, "old");
    assert_eq!(
        b.head(&k).await.unwrap().version,
        v,
        "an aborted writer changed the version"
    );
    expect_kind(
        b.head(&fresh).await,
        ErrorKind::NotFound,
        "head of an aborted new key",
    );
    assert_eq!(
        listed(&*b, ListOptions::default()).await,
        ["writer/dropped"],
        "aborted writes left something listed"
    );
}

pub(super) async fn writer_applies_put_mode_at_close(b: Arc<dyn Backend>) {
    let k = key("writer/modes");
    let v1 = put(&*b, &k, "v1").await.version;
    // Create on an existing key fails (at open or at close) and leaves the object alone.
    let created = async {
        let mut w = b.writer(&k, PutOptions::create()).await?;
        w.write(Bytes::from_static(b"create")).await?;
        w.close().await
    }
    .await;
    expect_kind(
        created,
        ErrorKind::AlreadyExists,
        "writer with Create on an existing key",
    );
    // Update from a version that went stale while the writer was open.
    let mut w = b.writer(&k, PutOptions::update(v1.clone())).await.unwrap();
    w.write(Bytes::from_static(b"from v1")).await.unwrap();
    let v2 = put(&*b, &k, "v2").await.version;
    expect_kind(
        w.close().await,
        ErrorKind::Conflict,
        "writer with Update whose version went stale before close",
    );
    assert_eq!(get_all(&*b, &k).await, "v2");
    let mut w = b.writer(&k, PutOptions::update(v2)).await.unwrap();
    w.write(Bytes::from_static(b"from v2")).await.unwrap();
    w.close().await.unwrap();
    assert_eq!(get_all(&*b, &k).await, "from v2");
    // Create racing a put that lands while the writer is open.
    let late = key("writer/late");
    let mut w = b.writer(&late, PutOptions::create()).await.unwrap();
    w.write(Bytes::from_static(b"loser")).await.unwrap();
    put(&*b, &late, "winner").await;
    expect_kind(
        w.close().await,
        ErrorKind::AlreadyExists,
        "writer with Create when the key appeared meanwhile",
    );
    assert_eq!(get_all(&*b, &late).await, "winner");
}

pub(super) async fn streaming_64_mib_in_1_mib_chunks(b: Arc<dyn Backend>) {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 64;
    let k = key("big/64mib");
    let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
    for i in 0..CHUNKS {
        w.write(pattern(CHUNK, i as u8))
            .await
            .unwrap_or_else(|e| panic!("write chunk {i}: {e}"));
    }
    expect_kind(
        b.head(&k).await,
        ErrorKind::NotFound,
        "head of a 64 MiB object before close",
    );
    let m = w.close().await.unwrap();
    assert_eq!(m.size, (CHUNK * CHUNKS) as u64);
    let obj = b.get(&k, GetOptions::default()).await.unwrap();
    let mut stream = obj.into_stream();
    let mut buf = BytesMut::new();
    let mut next = 0usize;
    while let Some(part) = stream.try_next().await.unwrap() {
        buf.extend_from_slice(&part);
        while buf.len() >= CHUNK {
            let chunk = buf.split_to(CHUNK);
            assert!(
                chunk[..] == pattern(CHUNK, next as u8)[..],
                "chunk {next} of the 64 MiB object differs"
            );
            next += 1;
        }
    }
    assert!(buf.is_empty(), "trailing bytes after 64 MiB");
    assert_eq!(next, CHUNKS, "chunks read back");
    let tail = b
        .get(&k, GetOptions::default().with_range(ByteRange::Suffix(10)))
        .await
        .unwrap();
    assert!(tail.bytes().await.unwrap() == pattern(CHUNK, 63).slice(CHUNK - 10..));
}
