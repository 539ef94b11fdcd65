//! The link proxy's own cost (`--features containers`): a 200-byte request and its echo over
//! loopback, straight to the echo server and through a link of the proxy with no toxics. The
//! difference of the two is what the extra hop adds to every request on a proxied link. Run
//! with `cargo bench --features containers --bench proxy`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use shakedown::containers::proxy::{LinkSpec, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUEST_BYTES: usize = 200;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// An echo server on loopback; its address.
async fn echo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

async fn round_trip(stream: &mut TcpStream) {
    let request = [7u8; REQUEST_BYTES];
    stream.write_all(&request).await.unwrap();
    let mut answer = [0u8; REQUEST_BYTES];
    stream.read_exact(&mut answer).await.unwrap();
}

fn proxy(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (mut direct, mut proxied) = runtime.block_on(async {
        let target = echo().await;
        let (port, admin) = (free_port(), free_port());
        let spec = LinkSpec { name: "a~b".into(), listen_port: port, target: target.clone() };
        tokio::spawn(async move { serve(vec![spec], &format!("127.0.0.1:{admin}")).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let direct = TcpStream::connect(&target).await.unwrap();
        let proxied = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        direct.set_nodelay(true).unwrap();
        proxied.set_nodelay(true).unwrap();
        (direct, proxied)
    });
    let mut group = c.benchmark_group("link_proxy");
    group.bench_function("round_trip_direct", |b| b.iter(|| runtime.block_on(round_trip(&mut direct))));
    group.bench_function("round_trip_proxied", |b| b.iter(|| runtime.block_on(round_trip(&mut proxied))));
    group.finish();
}

criterion_group!(benches, proxy);
criterion_main!(benches);
