//! Requests counted at the wire: a TCP proxy that counts what a client sends to a server.
//!
//! A test that holds a client to a number of requests (a listing that must not make a
//! request per key, say) points the client at a [`CountingProxy`] instead of at the server.
//! The proxy listens on 127.0.0.1 only, opens a connection to the target for each client
//! connection, and forwards the bytes both ways unchanged. What the client sends is fed, as
//! it arrives, to a parser for the protocol, a [`WireCounter`] (one per connection, so a
//! request split across reads is still one request), which adds each request to a tally
//! shared by all the proxy's connections. Each piece is counted *before* it is forwarded,
//! so a request is in the tally before its reply can reach the client: the tally read after
//! a call returns includes every request of that call.
//!
//! Counting per proxy is exact however many other clients use the same server at the time,
//! which a server's own counters are not. The proxy adds a loopback hop to each round trip
//! and no requests of its own.
//!
//! ```no_run
//! use store_testkit::wire::{CountingProxy, WireCounter};
//!
//! /// Counts the lines of a line-based protocol.
//! #[derive(Default)]
//! struct Lines;
//!
//! impl WireCounter for Lines {
//!     type Tally = u64;
//!
//!     fn feed(&mut self, bytes: &[u8], lines: &mut u64) {
//!         *lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
//!     }
//! }
//!
//! # async fn example() -> std::io::Result<()> {
//! let proxy = CountingProxy::<Lines>::start("127.0.0.1:6379").await?;
//! // Connect the client under test to `proxy.addr()`, then:
//! let before = proxy.tally();
//! // ... one call of the client ...
//! let sent = proxy.tally() - before;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The parser a [`CountingProxy`] runs over what the client sends on one connection.
///
/// The proxy makes one with `Default` for each client connection, so the parser may keep
/// the state of a request that is cut between reads.
pub trait WireCounter: Default + Send + 'static {
    /// What is counted, one for all the connections of a proxy: a `u64` of requests, or a
    /// map of commands by name. [`CountingProxy::tally`] returns a copy.
    type Tally: Clone + Default + Send + 'static;

    /// Reads the next `bytes` the client sent on this connection (cut anywhere: a request
    /// may begin in one call and end in another) and adds each request they complete to
    /// `tally`.
    ///
    /// It may panic on bytes the protocol does not allow: that ends the connection's relay
    /// task, and the client sees its connection closed.
    fn feed(&mut self, bytes: &[u8], tally: &mut Self::Tally);
}

/// A TCP proxy on 127.0.0.1 to one server that counts, with a [`WireCounter`] `C`, what
/// clients send through it.
///
/// Dropping it stops accepting connections; connections already open are relayed until
/// either side closes them.
pub struct CountingProxy<C: WireCounter> {
    addr: SocketAddr,
    tally: Arc<Mutex<C::Tally>>,
    accept: JoinHandle<()>,
}

impl<C: WireCounter> CountingProxy<C> {
    /// A proxy to the server at `target` (`host:port`), listening on a free port of
    /// 127.0.0.1 ([`addr`](Self::addr)).
    ///
    /// `target` is resolved once, here. Each client connection gets a connection of its
    /// own to the target; if that connection fails, the client's is closed.
    ///
    /// # Errors
    ///
    /// When `target` is not a `host:port` that resolves, or no loopback port can be bound;
    /// the error names the target.
    pub async fn start(target: &str) -> io::Result<Self> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("counting proxy to {target}: {e}"));
        let targets: Vec<SocketAddr> = tokio::net::lookup_host(target).await.map_err(named)?.collect();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.map_err(named)?;
        let addr = listener.local_addr().map_err(named)?;
        let tally = Arc::new(Mutex::new(C::Tally::default()));
        let shared = Arc::clone(&tally);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (targets, tally) = (targets.clone(), Arc::clone(&shared));
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&targets[..]).await {
                        let _ = relay(client, server, C::default(), &tally).await;
                    }
                });
            }
        });
        Ok(CountingProxy { addr, tally, accept })
    }

    /// The address clients connect to instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What has been counted so far, over all connections; it includes every request whose
    /// reply a client has received.
    pub fn tally(&self) -> C::Tally {
        self.tally.lock().clone()
    }
}

impl<C: WireCounter> fmt::Debug for CountingProxy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingProxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<C: WireCounter> Drop for CountingProxy<C> {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Forwards both ways until either side closes, feeding what the client sends to `counter`
/// before forwarding it.
async fn relay<C: WireCounter>(
    client: TcpStream,
    server: TcpStream,
    mut counter: C,
    tally: &Mutex<C::Tally>,
) -> io::Result<()> {
    // Pass each write on at once, as clients and servers themselves do.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from_client.read(&mut buf).await?;
            if n == 0 {
                return to_server.shutdown().await;
            }
            counter.feed(&buf[..n], &mut tally.lock());
            to_server.write_all(&buf[..n]).await?;
        }
    };
    let down = async {
        tokio::io::copy(&mut from_server, &mut to_client).await?;
        to_client.shutdown().await
    };
    tokio::try_join!(up, down).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts complete lines; a line cut between reads counts once, when it ends.
    #[derive(Default)]
    struct Lines;

    impl WireCounter for Lines {
        type Tally = u64;

        fn feed(&mut self, bytes: &[u8], lines: &mut u64) {
            *lines += bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        }
    }

    /// A server on 127.0.0.1 that sends back what it reads, and its address.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut from, mut to) = conn.into_split();
                    let _ = tokio::io::copy(&mut from, &mut to).await;
                });
            }
        });
        addr
    }

    /// Sends `bytes` through a new connection to `addr` and reads back as many.
    async fn round_trip(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(bytes).await.unwrap();
        let mut back = vec![0u8; bytes.len()];
        conn.read_exact(&mut back).await.unwrap();
        back
    }

    #[tokio::test]
    async fn forwards_both_ways_and_counts_before_the_reply() {
        let server = echo_server().await;
        let proxy = CountingProxy::<Lines>::start(&server.to_string()).await.unwrap();
        assert!(proxy.addr().ip().is_loopback(), "{proxy:?}");
        assert_ne!(proxy.addr(), server);
        assert_eq!(proxy.tally(), 0);

        assert_eq!(round_trip(proxy.addr(), b"one\ntwo\n").await, b"one\ntwo\n");
        // The reply has arrived, so its requests are counted.
        assert_eq!(proxy.tally(), 2);

        // A second connection adds to the same tally.
        assert_eq!(round_trip(proxy.addr(), b"three\n").await, b"three\n");
        assert_eq!(proxy.tally(), 3);
    }

    #[tokio::test]
    async fn a_target_that_refuses_closes_the_client_connection() {
        let gone = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let target = gone.local_addr().unwrap();
        drop(gone);
        let proxy = CountingProxy::<Lines>::start(&target.to_string()).await.unwrap();
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 1];
        // Closed (end of stream) or reset, never an answer.
        assert!(matches!(conn.read(&mut buf).await, Ok(0) | Err(_)));
        assert_eq!(proxy.tally(), 0);
    }

    #[tokio::test]
    async fn a_target_that_is_not_host_and_port_is_an_error_naming_it() {
        let err = CountingProxy::<Lines>::start("no-port-here").await.unwrap_err();
        assert!(err.to_string().contains("no-port-here"), "{err}");
    }
}
