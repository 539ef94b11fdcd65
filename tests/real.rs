//! The real adapters against real servers: PostgreSQL 15 primary + streaming hot standby on
//! loopback, as `scripts/real-services.sh up` starts them. Run with `make test-real`, which starts
//! the servers, runs these (`--features real`), and stops them. Without the servers these tests
//! fail with a message saying so; they never skip.
#![cfg(feature = "real")]

mod common;

use common::real::{cluster, history, invest, invest_api, serve, unique};
use shakedown::stack::bugs::Bugs;
use shakedown::stack::ports::{DbAdmin, DbNode, InvestStore, NewInvestment, PortError};

fn new(key: &str) -> NewInvestment {
    NewInvestment { key: key.into(), coin: "bitcoin".into(), amount_usd_cents: 1000, price_usd_micros: 1 }
}

/// Pause WAL replay on the standby for the duration of `body`, so it lags on demand.
async fn with_replay_paused<T>(
    cluster: &shakedown::real::PgCluster,
    body: impl std::future::Future<Output = T>,
) -> T {
    let standby = cluster.pool(DbNode::PgReplica);
    sqlx::query("SELECT pg_wal_replay_pause()").execute(standby).await.expect("pause replay on the standby");
    let out = body.await;
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(standby)
        .await
        .expect("resume replay on the standby");
    out
}

#[tokio::test]
async fn an_investment_written_to_the_primary_appears_in_history_read_from_the_standby() {
    let cluster = cluster().await;
    let api = invest_api(&cluster, Bugs::default());
    let key = unique("replicated");
    let (response, written) = invest(&api, &key).await;
    assert_eq!(response.status, 201, "{}", String::from_utf8_lossy(&response.body));
    let written = written.unwrap();
    let page = history(&api, written.lsn).await;
    assert_eq!(page.served_by, "pg-replica", "the standby replays within the wait");
    assert!(page.replica_lsn >= written.lsn);
    assert!(page.investments.iter().any(|i| i.key == key), "the standby has the row");
}

#[tokio::test]
async fn a_retried_investment_is_stored_once() {
    let cluster = cluster().await;
    let key = unique("retried");
    let (first, replayed) = cluster.record(new(&key)).await.unwrap();
    assert!(!replayed);
    let (again, replayed) = cluster.record(new(&key)).await.unwrap();
    assert!(replayed, "the second call is a replay");
    assert_eq!(again.id, first.id);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM investments WHERE key = $1")
        .bind(&key)
        .fetch_one(cluster.pool(DbNode::PgPrimary))
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn the_standby_refuses_writes_and_the_probe_tells_the_nodes_apart() {
    let cluster = cluster().await;
    let timeout = std::time::Duration::from_secs(2);
    let primary = cluster.probe(DbNode::PgPrimary, timeout).await.expect("the primary answers");
    assert!(primary.writable);
    // scripts/real-services.sh streams asynchronously: the primary reports its standby, not as
    // synchronous, its flush lag in bytes of WAL (a few kB at most on an idle pair).
    let standby = primary.standby.expect("the primary reports its standby (pg_stat_replication)");
    assert_eq!((standby.node, standby.sync, standby.streaming), (DbNode::PgReplica, false, true));
    assert!(standby.flush_lag_bytes < 1 << 20, "{standby:?}");
    let replica = cluster.probe(DbNode::PgReplica, timeout).await.expect("the standby answers");
    assert_eq!((replica.writable, replica.standby), (false, None));
    cluster.set_writer(DbNode::PgReplica).await.unwrap();
    let refused = cluster.record(new(&unique("on-standby"))).await;
    assert!(matches!(refused, Err(PortError::ReadOnly(_))), "{refused:?}");
}

#[tokio::test]
async fn a_read_your_writes_read_falls_back_to_the_primary_while_the_standby_lags() {
    let cluster = cluster().await;
    let api = invest_api(&cluster, Bugs::default());
    let key = unique("ryw");
    let page = with_replay_paused(&cluster, async {
        let (response, written) = invest(&api, &key).await;
        assert_eq!(response.status, 201);
        history(&api, written.unwrap().lsn).await
    })
    .await;
    assert_eq!(page.served_by, "pg-primary", "the standby had not replayed the write");
    assert!(page.investments.iter().any(|i| i.key == key), "read-your-writes held");
}

#[tokio::test]
async fn bug_stale_read_your_writes_answers_from_the_lagging_standby() {
    let cluster = cluster().await;
    let api = invest_api(&cluster, Bugs { stale_read_your_writes: true, ..Bugs::default() });
    let key = unique("stale");
    let page = with_replay_paused(&cluster, async {
        let (response, written) = invest(&api, &key).await;
        assert_eq!(response.status, 201);
        history(&api, written.unwrap().lsn).await
    })
    .await;
    assert_eq!(page.served_by, "pg-replica");
    assert!(
        !page.investments.iter().any(|i| i.key == key),
        "the planted bug: the client's own write is missing"
    );
}

#[tokio::test]
async fn bug_ack_before_commit_acknowledges_a_write_the_database_refused() {
    let cluster = cluster().await;
    // Writes go to the standby, which refuses them; with the bug the API still answers 201.
    cluster.set_writer(DbNode::PgReplica).await.unwrap();
    let honest = invest_api(&cluster, Bugs::default());
    let (response, _) = invest(&honest, &unique("honest")).await;
    assert_ne!(response.status / 100, 2, "without the bug a refused write is not acknowledged");
    let buggy = invest_api(&cluster, Bugs { ack_before_commit: true, ..Bugs::default() });
    let key = unique("acked");
    let (response, _) = invest(&buggy, &key).await;
    assert_eq!(response.status, 201, "the planted bug acknowledges before the commit");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM investments WHERE key = $1")
        .bind(&key)
        .fetch_one(cluster.pool(DbNode::PgPrimary))
        .await
        .unwrap();
    assert_eq!(rows, 0, "acknowledged, yet never written");
}

/// A SKU of its own per test, with `stock` on the shelf.
/// The gateway on `queue` over a fresh shelf of 10, and one query it accepted (202):
/// `(api, sku, id)`.
async fn one_accepted_query(
    cluster: &shakedown::real::PgCluster,
    queue: &shakedown::real::rabbit::RabbitConfig,
) -> (axum::Router, String, u64) {
    let api = common::real::gateway_api(cluster, queue, Bugs::default()).await;
    let sku = shelf(cluster, 10).await;
    let (status, id, _) = common::real::submit(&api, &unique("q"), &sku).await;
    assert_eq!(status, 202);
    (api, sku, id.unwrap())
}

async fn shelf(cluster: &shakedown::real::PgCluster, stock: u64) -> String {
    let sku = unique("sku");
    cluster.set_stock(&[(&sku, stock)]).await.unwrap();
    sku
}

async fn on_hand(cluster: &shakedown::real::PgCluster, sku: &str) -> u64 {
    use shakedown::stack::ports::InventoryStore;
    cluster.stock().await.unwrap()[sku]
}

#[tokio::test]
async fn a_completed_order_takes_stock_once_even_when_retried() {
    let cluster = cluster().await;
    let api = common::real::saga_api(&cluster, Bugs::default());
    let sku = shelf(&cluster, 100).await;
    let key = unique("order");
    assert_eq!(common::real::order(&api, &key, &sku, 3).await, (201, "completed".into()));
    let (status, outcome) = common::real::order(&api, &key, &sku, 3).await;
    assert_eq!((status / 100, outcome.as_str()), (2, "completed"), "a retry answers the same");
    assert_eq!(on_hand(&cluster, &sku).await, 97);
}

#[tokio::test]
async fn a_saga_whose_order_step_fails_leaves_stock_unchanged() {
    use shakedown::stack::ports::{OrderStore, SagaLog};
    let cluster = cluster().await;
    let api = common::real::saga_api(&cluster, Bugs::default());
    let sku = shelf(&cluster, 100).await;
    let key = unique("order");
    // A tombstone for this order id: the orders service refuses to create it, definitely.
    OrderStore::cancel(&cluster, &key).await.unwrap();
    let (status, outcome) = common::real::order(&api, &key, &sku, 3).await;
    assert_eq!(outcome, "compensated", "status {status}");
    assert_eq!(on_hand(&cluster, &sku).await, 100, "the reservation was put back");
    let trace = cluster.trace(&key).await.unwrap();
    assert!(trace.iter().any(|s| s == "restock ok"), "{trace:?}");
}

#[tokio::test]
async fn bug_skip_compensation_leaves_stock_taken_for_an_order_that_does_not_exist() {
    use shakedown::stack::ports::{OrderStore, SagaLog};
    let cluster = cluster().await;
    let api = common::real::saga_api(&cluster, Bugs { skip_compensation: true, ..Bugs::default() });
    let sku = shelf(&cluster, 100).await;
    let key = unique("order");
    OrderStore::cancel(&cluster, &key).await.unwrap();
    common::real::order(&api, &key, &sku, 3).await;
    assert_eq!(on_hand(&cluster, &sku).await, 97, "the planted bug: stock stays taken");
    let trace = cluster.trace(&key).await.unwrap();
    assert!(trace.iter().any(|s| s == "restock skipped"), "{trace:?}");
}

/// Issue 14: an orchestrator killed mid-saga (its runtime shut down after the order step, with
/// the reports step hanging) leaves its saga unfinished in the log; once the lease runs out, a
/// live orchestrator's recovery takes it over and compensates it on the real stores: both rows
/// tombstoned, the stock put back exactly once.
#[test]
fn issue_14_a_saga_whose_orchestrator_is_killed_mid_way_is_taken_over_and_compensated() {
    use shakedown::stack::ports::SagaLog;
    use std::time::Duration;
    let lease = Duration::from_secs(1);
    let key = unique("order");
    let live = tokio::runtime::Runtime::new().expect("a runtime");
    let (cluster, sku) = live.block_on(async {
        let cluster = cluster().await;
        let sku = shelf(&cluster, 100).await;
        (cluster, sku)
    });
    // The doomed orchestrator runs on its own runtime; shutting it down kills every task it has.
    let doomed = tokio::runtime::Runtime::new().expect("a runtime");
    let doomed_cluster = doomed.block_on(common::real::cluster());
    let api = shakedown::stack::orders::router(common::real::saga_state(
        &doomed_cluster,
        "api-doomed",
        lease,
        true,
    ));
    let (order_key, order_sku) = (key.clone(), sku.clone());
    doomed.spawn(async move { common::real::order(&api, &order_key, &order_sku, 3).await });
    live.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cluster.trace(&key).await.unwrap().iter().any(|s| s == "order ok") {
            assert!(tokio::time::Instant::now() < deadline, "the saga never reached its order step");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    doomed.shutdown_background();
    assert_eq!(live.block_on(on_hand(&cluster, &sku)), 97, "the dead orchestrator took the stock");
    live.block_on(async {
        let state = common::real::saga_state(&cluster, "api-live", lease, false);
        let recovery = tokio::spawn(shakedown::stack::orders::recover(state));
        // The outcome is recorded after the last compensation step is traced: wait for the
        // outcome itself, not for the trace line (reading it at "restock ok" raced the record).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let outcome = loop {
            let outcome: Option<String> = sqlx::query_scalar("SELECT outcome FROM sagas WHERE order_id = $1")
                .bind(&key)
                .fetch_one(cluster.pool(cluster.writer()))
                .await
                .unwrap();
            if outcome.is_some() {
                break outcome;
            }
            let trace = cluster.trace(&key).await.unwrap();
            assert!(tokio::time::Instant::now() < deadline, "no orchestrator finished the saga: {trace:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        recovery.abort();
        assert_eq!(outcome.as_deref(), Some("compensated"));
        assert_eq!(on_hand(&cluster, &sku).await, 100, "the stock was put back");
        let trace = cluster.trace(&key).await.unwrap();
        assert!(trace.contains(&"resumed by api-live".to_string()), "{trace:?}");
        assert_eq!(trace.iter().filter(|s| *s == "restock ok").count(), 1, "{trace:?}");
    });
}

fn queue(capacity: u32) -> shakedown::real::rabbit::RabbitConfig {
    shakedown::real::rabbit::RabbitConfig::from_env(&unique("queries"), capacity)
}

async fn completed(cluster: &shakedown::real::PgCluster, id: u64) -> bool {
    use shakedown::stack::ports::QueryStore;
    cluster.get(id).await.unwrap().is_some_and(|q| q.status == "completed")
}

#[tokio::test]
async fn a_full_queue_answers_503_and_nothing_accepted_is_lost() {
    let cluster = cluster().await;
    let queue = queue(3);
    let api = common::real::gateway_api(&cluster, &queue, Bugs::default()).await;
    let sku = shelf(&cluster, 10).await;
    let mut accepted = Vec::new();
    let mut refused = 0;
    for n in 0..5 {
        match common::real::submit(&api, &unique(&format!("q{n}")), &sku).await {
            (202, Some(id), _) => accepted.push(id),
            (503, None, Some(_retry_after)) => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((accepted.len(), refused), (3, 2), "three fit, the rest are refused with Retry-After");
    let worker = common::real::worker(&cluster, &queue, Bugs::default());
    for &id in &accepted {
        common::real::eventually("an accepted query completes", async || completed(&cluster, id).await).await;
        assert_eq!(cluster.effects(id).await.unwrap(), 1);
    }
    worker.abort();
}

#[tokio::test]
async fn a_worker_killed_mid_message_leads_to_exactly_one_effect_after_redelivery() {
    use shakedown::real::rabbit::RabbitConsumers;
    use shakedown::stack::ports::{ConsumerFactory, QueryStore};
    let cluster = cluster().await;
    let queue = queue(10);
    let (api, sku, id) = one_accepted_query(&cluster, &queue).await;
    // Queued behind it: once this one completes, the first has been redelivered and processed.
    let barrier = common::real::submit(&api, &unique("barrier"), &sku).await.1.unwrap();
    // A worker takes the message, commits its effect, and dies before acknowledging it.
    let mut doomed = RabbitConsumers::new(queue.clone()).connect(1).await.unwrap();
    let delivery = doomed.next().await.unwrap();
    assert_eq!(delivery.message.id, id);
    assert!(cluster.complete(id, "done", true).await.unwrap());
    drop(doomed);
    // RabbitMQ redelivers it to a live worker, which must not apply the effect again.
    let worker = common::real::worker(&cluster, &queue, Bugs::default());
    common::real::eventually("the message behind it completes", async || completed(&cluster, barrier).await)
        .await;
    assert_eq!(cluster.effects(id).await.unwrap(), 1, "exactly one effect");
    worker.abort();
}

/// A TCP relay from a loopback port to `upstream` that can be frozen: once `frozen` is set it
/// stops moving bytes either way but keeps both sockets open, as a paused or cut-off host does
/// (no FIN, no RST). Returns the port it listens on.
async fn freezable_relay(upstream: String, frozen: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let ((client_in, client_out), (server_in, server_out)) =
                (client.into_split(), server.into_split());
            tokio::spawn(pipe(client_in, server_out, frozen.clone()));
            tokio::spawn(pipe(server_in, client_out, frozen.clone()));
        }
    });
    port
}

/// Copy `from` to `to` until either closes; once `frozen`, hold both open and copy nothing.
async fn pipe(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Issue 18 on the real broker: a consumer that stops answering without closing its connection
/// (its host froze, or the network cut it off) must not keep its unacknowledged messages for
/// long. Method: a consumer reaches RabbitMQ through a relay, takes the only message and never
/// acks; the relay then freezes, leaving the TCP connection open and silent. A healthy worker
/// must complete the query within 20 s. With RabbitMQ's default 60 s heartbeat the message was
/// still held after 120 s; with the consumers' 1 s heartbeat (`CONSUMER_HEARTBEAT_SECS`) it is
/// handed over in a few seconds.
#[tokio::test]
async fn issue_18_a_silent_consumer_hands_its_unacked_messages_on_within_seconds() {
    use shakedown::real::rabbit::{RabbitConfig, RabbitConsumers};
    use shakedown::stack::ports::ConsumerFactory;
    let cluster = cluster().await;
    let queue = queue(10);
    let (_, _, id) = one_accepted_query(&cluster, &queue).await;
    let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let broker = queue.uri.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().to_owned();
    let port = freezable_relay(broker.clone(), frozen.clone()).await;
    let relayed =
        RabbitConfig { uri: queue.uri.replacen(&broker, &format!("127.0.0.1:{port}"), 1), ..queue.clone() };
    let mut silent = RabbitConsumers::new(relayed).connect(5).await.unwrap();
    assert_eq!(silent.next().await.unwrap().message.id, id, "the silent consumer holds the message");
    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    let worker = common::real::worker(&cluster, &queue, Bugs::default());
    let started = std::time::Instant::now();
    let limit = std::time::Duration::from_secs(20);
    let what = "a healthy worker completes the silent consumer's message";
    common::real::within(what, limit, async || completed(&cluster, id).await).await;
    println!("handed over after {:.1} s", started.elapsed().as_secs_f64());
    worker.abort();
    drop(silent);
}

#[tokio::test]
async fn bug_non_idempotent_worker_applies_a_redelivered_message_twice() {
    use shakedown::real::rabbit::RabbitConsumers;
    use shakedown::stack::ports::{ConsumerFactory, QueryStore};
    let cluster = cluster().await;
    let queue = queue(10);
    let api = common::real::gateway_api(&cluster, &queue, Bugs::default()).await;
    let sku = shelf(&cluster, 10).await;
    let id = common::real::submit(&api, &unique("q"), &sku).await.1.unwrap();
    let mut doomed = RabbitConsumers::new(queue.clone()).connect(1).await.unwrap();
    doomed.next().await.unwrap();
    cluster.complete(id, "done", true).await.unwrap();
    drop(doomed);
    let worker =
        common::real::worker(&cluster, &queue, Bugs { non_idempotent_worker: true, ..Bugs::default() });
    common::real::eventually("the planted bug applies the effect again", async || {
        cluster.effects(id).await.unwrap() == 2
    })
    .await;
    worker.abort();
}

#[tokio::test]
async fn bug_unconfirmed_publish_accepts_a_query_the_full_queue_rejected() {
    let cluster = cluster().await;
    let queue = queue(1);
    let api =
        common::real::gateway_api(&cluster, &queue, Bugs { unconfirmed_publish: true, ..Bugs::default() })
            .await;
    let sku = shelf(&cluster, 10).await;
    let first = common::real::submit(&api, &unique("q"), &sku).await;
    let second = common::real::submit(&api, &unique("q"), &sku).await;
    assert_eq!((first.0, second.0), (202, 202), "the planted bug: 202 without the broker's confirm");
    let worker = common::real::worker(&cluster, &queue, Bugs::default());
    let first_id = first.1.unwrap();
    common::real::eventually("the queued query completes", async || completed(&cluster, first_id).await)
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!completed(&cluster, second.1.unwrap()).await, "the second was accepted, then lost");
    worker.abort();
}

#[tokio::test]
async fn shakedown_serve_runs_the_services_as_processes_that_call_each_other() {
    use shakedown::real::http::RealHttp;
    use shakedown::stack::ports::{HttpClient, HttpRequest};
    cluster().await;
    let (feed, invest) = (
        format!("127.0.0.1:{}", common::real::free_port()),
        format!("127.0.0.1:{}", common::real::free_port()),
    );
    let _feed = serve(&["pricefeed", "--listen", &feed]);
    let _invest = serve(&["invest", "--listen", &invest, "--peer", &format!("pricefeed:80={feed}")]);
    let http = RealHttp::new(Default::default());
    let key = unique("served");
    let request = HttpRequest {
        method: http::Method::POST,
        authority: invest.clone(),
        path: "/invest".into(),
        body: Some(
            serde_json::to_vec(&serde_json::json!({"key": key, "coin": "bitcoin", "amount_usd_cents": 1000}))
                .unwrap(),
        ),
        headers: Vec::new(),
    };
    let mut answer = None;
    for _ in 0..100 {
        match http.send(request.clone(), std::time::Duration::from_secs(2)).await {
            Ok(response) => {
                answer = Some(response);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let answer = answer.expect("the invest service answered within 10 s");
    assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.body));
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(body["price_usd_micros"], 43_250_120_000u64, "the price came from the served price feed");
}

/// Every host a containers run starts, as processes on loopback with the stack from
/// `SHAKEDOWN_STACK`: the balancer (upstreams from the stack, through the peer table) in front of
/// an `api` host, the price feed, the three saga participants and a worker. Each op goes through
/// the balancer and comes back with its documented answer; every HTTP service answers
/// `GET /health`.
#[tokio::test]
async fn serve_plays_every_host_of_the_stack_behind_the_balancer() {
    use common::real::{call, serve_with, within};
    use http::Method;
    use serde_json::json;
    cluster().await;
    let queue = unique("served-queries");
    let stack = json!({"api_replicas": 1, "queue": {"capacity": 50}}).to_string();
    let env = [("SHAKEDOWN_STACK", stack.as_str())];
    let ports: Vec<u16> = (0..8).map(|_| common::real::free_port()).collect();
    let port = |n: u16| format!("127.0.0.1:{}", ports[n as usize]);
    let peers = [
        "--peer".to_owned(),
        format!("pricefeed:80={}", port(1)),
        "--peer".to_owned(),
        format!("inventory:80={}", port(2)),
        "--peer".to_owned(),
        format!("ordersvc:80={}", port(3)),
        "--peer".to_owned(),
        format!("reports:80={}", port(4)),
        "--peer".to_owned(),
        format!("api-1:80={}", port(5)),
    ];
    let start = |service: &str, listen: &str| {
        let mut args = vec![service, "--listen", listen, "--queue", &queue];
        args.extend(peers.iter().map(String::as_str));
        serve_with(&args, &env)
    };
    let names = ["lb", "pricefeed", "inventory", "ordersvc", "reports", "api"];
    let services = ["balancer", "pricefeed", "inventory", "ordersvc", "reports", "api"];
    let _served: Vec<_> = (0u16..6).map(|n| start(services[n as usize], &port(n))).collect();
    let _worker = start("worker", "127.0.0.1:1");
    for (n, name) in names.iter().enumerate() {
        within(&format!("{name} answers /health"), std::time::Duration::from_secs(20), async || {
            call(Method::GET, &port(n as u16), "/health", None).await.is_some_and(|(s, _)| s == 200)
        })
        .await;
    }
    let lb = port(0);
    within("the balancer admits api-1", std::time::Duration::from_secs(5), async || {
        call(Method::GET, &lb, "/history", None).await.is_some_and(|(s, _)| s == 200)
    })
    .await;
    let invest = json!({"key": unique("lb-invest"), "coin": "bitcoin", "amount_usd_cents": 1000});
    let (status, body) = call(Method::POST, &lb, "/invest", Some(invest)).await.expect("an answer");
    assert_eq!(status, 201, "{body}");
    let order = json!({"key": unique("lb-order"), "sku": "sku-1", "qty": 1});
    let (status, body) = call(Method::POST, &lb, "/orders", Some(order)).await.expect("an answer");
    assert_eq!((status, &body["status"]), (201, &json!("completed")), "{body}");
    let query = json!({"key": unique("lb-query"), "sku": "sku-2"});
    let (status, body) = call(Method::POST, &lb, "/queries", Some(query)).await.expect("an answer");
    assert_eq!(status, 202, "{body}");
    let path = format!("/queries/{}", body["id"]);
    common::real::eventually("the worker completes the query", async || {
        call(Method::GET, &lb, &path, None).await.is_some_and(|(_, b)| b["status"] == "completed")
    })
    .await;
}

/// A malformed `SHAKEDOWN_STACK` is bad input (exit 254) naming the variable and the field.
#[test]
fn serve_refuses_a_bad_stack_naming_the_variable_and_the_field() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shakedown"))
        .args(["serve", "pricefeed", "--listen", "127.0.0.1:1"])
        .env("SHAKEDOWN_STACK", r#"{"queue": {"capacity": "lots"}}"#)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(254), "{stderr}");
    assert!(stderr.contains("SHAKEDOWN_STACK at `queue.capacity`"), "{stderr}");
}

/// Make the loopback primary refuse writes (`default_transaction_read_only`, reloaded) until
/// dropped; dropping puts it back, even when the test panics, so later tests find it writable.
struct ReadOnlyPrimary;

impl ReadOnlyPrimary {
    async fn set(on: bool) {
        let url = shakedown::real::NodeConfig::from_env(DbNode::PgPrimary).url;
        let pool = sqlx::PgPool::connect(&url).await.expect("the primary answers");
        let sql = if on {
            "ALTER SYSTEM SET default_transaction_read_only = on"
        } else {
            "ALTER SYSTEM RESET default_transaction_read_only"
        };
        sqlx::query(sql).execute(&pool).await.unwrap();
        sqlx::query("SELECT pg_reload_conf()").execute(&pool).await.unwrap();
        pool.close().await;
    }

    async fn on() -> ReadOnlyPrimary {
        ReadOnlyPrimary::set(true).await;
        ReadOnlyPrimary
    }
}

impl Drop for ReadOnlyPrimary {
    fn drop(&mut self) {
        // Drop cannot await: reset from a runtime of its own on another thread.
        std::thread::spawn(|| {
            tokio::runtime::Runtime::new().unwrap().block_on(ReadOnlyPrimary::set(false));
        })
        .join()
        .expect("the primary is writable again");
    }
}

/// The db-router (HAProxy's role): it routes new connections to the node that takes writes;
/// when the primary stops taking writes (made read-only, the standby still in recovery) the
/// route becomes none within ~1 s, the proxied connection is cut and new ones are refused; when
/// the primary takes writes again, connections land on it again. `set_writer` is recorded.
#[tokio::test]
async fn the_db_router_routes_to_the_writable_node_and_cuts_connections_when_it_stops() {
    use common::real::{call, db_router, landed_on, route, within};
    use sqlx::Connection;
    cluster().await;
    let (listen, admin_port) = (common::real::free_port(), common::real::free_port());
    let (_router, url) = db_router(listen, admin_port).await;
    let admin = &format!("127.0.0.1:{admin_port}");
    assert_eq!(call(http::Method::GET, admin, "/health", None).await.map(|(s, _)| s), Some(200));
    assert_eq!(landed_on(&url).await.unwrap(), "primary");
    let (_, changes) = route(admin).await.unwrap();
    assert_eq!(changes, 1, "none → pg-primary");
    let mut held = sqlx::PgConnection::connect(&url).await.unwrap();
    let read_only = ReadOnlyPrimary::on().await;
    let stopped = std::time::Instant::now();
    within("the route becomes none", std::time::Duration::from_secs(1), async || {
        route(admin).await.is_some_and(|(node, _)| node.is_null())
    })
    .await;
    eprintln!(
        "db-router: route none {} ms after the primary turned read-only",
        stopped.elapsed().as_millis()
    );
    assert!(sqlx::query("SELECT 1").execute(&mut held).await.is_err(), "the proxied connection was cut");
    assert!(landed_on(&url).await.is_err(), "no node takes writes: new connections are refused");
    drop(read_only);
    within("the route is pg-primary again", std::time::Duration::from_secs(1), async || {
        route(admin).await.is_some_and(|(node, _)| node == "pg-primary")
    })
    .await;
    assert_eq!(landed_on(&url).await.unwrap(), "primary");
    assert_eq!(route(admin).await.unwrap().1, 3);
    let declared =
        call(http::Method::POST, admin, "/set_writer", Some(serde_json::json!("pg-replica"))).await;
    assert_eq!(declared.map(|(s, _)| s), Some(200));
    let (_, body) = call(http::Method::GET, admin, "/route", None).await.unwrap();
    assert_eq!(
        (&body["writer"], &body["route"]),
        (&serde_json::json!("pg-replica"), &serde_json::json!("pg-primary"))
    );
}

/// A database of its own on the loopback pair, migrated, with the catalogue on the shelf;
/// dropped (forcibly) by [`FreshDb::drop_now`].
struct FreshDb {
    name: String,
    cluster: shakedown::real::PgCluster,
}

impl FreshDb {
    async fn new() -> FreshDb {
        use shakedown::real::NodeConfig;
        let admin = cluster().await;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let name = format!("sd_state_{nanos}");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(admin.pool(DbNode::PgPrimary)).await.unwrap();
        let on = |node: DbNode| {
            let config = NodeConfig::from_env(node);
            let base = config.url.rsplit_once('/').expect("a URL with a database").0.to_owned();
            NodeConfig { url: format!("{base}/{name}"), ..config }
        };
        let cluster = shakedown::real::PgCluster::new(on(DbNode::PgPrimary), on(DbNode::PgReplica)).unwrap();
        cluster.migrate().await.unwrap();
        cluster.seed_stock(shakedown::workload::CATALOG).await.unwrap();
        FreshDb { name, cluster }
    }

    async fn drop_now(self) {
        self.cluster.pool(DbNode::PgPrimary).close().await;
        self.cluster.pool(DbNode::PgReplica).close().await;
        let admin = cluster().await;
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(admin.pool(DbNode::PgPrimary))
            .await
            .unwrap();
    }
}

/// `real::state` on a small dataset written through the real stores in a database of its own:
/// the counts, the saga records (one completed, one compensated), the queries, a stock snapshot,
/// and the split-brain rule (a node in recovery or unreachable contributes nothing; a writable
/// other node contributes the keys the final primary lacks).
#[tokio::test]
async fn read_final_state_reads_a_small_dataset_as_the_simulation_would() {
    use shakedown::real::state::{investment_keys, read_final_state, stock_snapshot};
    use shakedown::stack::ports::{OrderStore, QueryStore};
    let db = FreshDb::new().await;
    let store = &db.cluster;
    for key in ["i1", "i2", "i3"] {
        store.record(new(key)).await.unwrap();
    }
    store.record(new("i1")).await.unwrap(); // a retry: still one row
    let api = common::real::saga_api(store, Bugs::default());
    assert_eq!(common::real::order(&api, "o-ok", "sku-1", 2).await, (201, "completed".into()));
    OrderStore::cancel(store, "o-comp").await.unwrap(); // the order step will fail definitely
    assert_eq!(common::real::order(&api, "o-comp", "sku-2", 3).await.1, "compensated");
    let (done, _) = store.create_pending("q-done", "sku-1").await.unwrap();
    store.complete(done.id, "ok", true).await.unwrap();
    let (pending, _) = store.create_pending("q-pending", "sku-1").await.unwrap();

    let primary = store.pool(DbNode::PgPrimary);
    let replica = store.pool(DbNode::PgReplica);
    common::real::eventually("the standby has the database", async || {
        sqlx::query("SELECT 1 FROM investments LIMIT 1").execute(replica).await.is_ok()
    })
    .await;
    let state = read_final_state(primary, DbNode::PgPrimary, Some(replica)).await.unwrap();
    assert_eq!(state.primary, "pg-primary");
    let ones = |keys: &[&str]| keys.iter().map(|k| (k.to_string(), 1)).collect();
    assert_eq!(state.investments, ones(&["i1", "i2", "i3"]));
    assert!(state.diverged_investments.is_empty(), "the other node is in recovery");
    assert_eq!(state.initial_stock.len(), shakedown::workload::CATALOG.len());
    assert_eq!((state.stock["sku-1"], state.stock["sku-2"]), (19_998, 20_000));
    let ok = &state.orders["o-ok"];
    assert_eq!((ok.sku.as_str(), ok.qty, ok.reserved_qty), ("sku-1", 2, 2));
    assert_eq!((ok.order_exists, ok.report_exists, ok.compensations), (true, true, 0));
    assert!(ok.trace.first().is_some_and(|s| s.starts_with("reserve")), "{:?}", ok.trace);
    let comp = &state.orders["o-comp"];
    assert_eq!((comp.sku.as_str(), comp.reserved_qty), ("sku-2", 0));
    assert_eq!((comp.order_exists, comp.report_exists, comp.compensations), (false, false, 1));
    assert!(comp.trace.iter().any(|s| s == "restock ok"), "{:?}", comp.trace);
    assert_eq!(state.orders.len(), 2);
    let done_record = &state.queries["q-done"];
    assert_eq!((done_record.id, done_record.status.as_str(), done_record.effects), (done.id, "completed", 1));
    assert_eq!((state.queries["q-pending"].id, state.queries["q-pending"].effects), (pending.id, 0));

    let snapshot = stock_snapshot(primary, 7).await.unwrap();
    assert_eq!((snapshot.time_ns, snapshot.on_hand["sku-1"]), (7, 19_998));
    assert_eq!(snapshot.reserved, [("sku-1".to_string(), 2)].into_iter().collect());
    assert_eq!(investment_keys(primary).await.unwrap().len(), 3);

    // Split brain: another writable node (the loopback primary's default database) holding a key
    // this primary lacks.
    let writable_other = cluster().await;
    let stray = unique("stray");
    writable_other.record(new(&stray)).await.unwrap();
    let state = read_final_state(primary, DbNode::PgPrimary, Some(writable_other.pool(DbNode::PgPrimary)))
        .await
        .unwrap();
    assert!(state.diverged_investments.contains(&stray));
    assert!(!state.diverged_investments.iter().any(|k| k.starts_with('i') && k.len() == 2));
    let nowhere = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/postgres")
        .unwrap();
    let state = read_final_state(primary, DbNode::PgPrimary, Some(&nowhere)).await.unwrap();
    assert!(state.diverged_investments.is_empty(), "an unreachable other node is ignored");
    db.drop_now().await;
}
