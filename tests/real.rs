//! The real adapters against real servers: PostgreSQL 15 primary + streaming hot standby on
//! loopback, as `scripts/real-services.sh up` starts them. Run with `make test-real`, which starts
//! the servers, runs these (`--features real`), and stops them. Without the servers these tests
//! fail with a message saying so; they never skip.
#![cfg(feature = "real")]

mod common;

use common::real::{cluster, history, invest, invest_api, unique};
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
    assert_eq!(cluster.probe(DbNode::PgPrimary, timeout).await, Ok(true));
    assert_eq!(cluster.probe(DbNode::PgReplica, timeout).await, Ok(false));
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
    let api = common::real::gateway_api(&cluster, &queue, Bugs::default()).await;
    let sku = shelf(&cluster, 10).await;
    let (status, id, _) = common::real::submit(&api, &unique("q"), &sku).await;
    assert_eq!(status, 202);
    let id = id.unwrap();
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

/// A child process killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str]) -> Child {
    Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_shakedown")).arg("serve").args(args).spawn().unwrap(),
    )
}

#[tokio::test]
async fn shakedown_serve_runs_the_services_as_processes_that_call_each_other() {
    use shakedown::real::http::RealHttp;
    use shakedown::stack::ports::{HttpClient, HttpRequest};
    cluster().await;
    let _feed = serve(&["pricefeed", "--listen", "127.0.0.1:55801"]);
    let _invest = serve(&["invest", "--listen", "127.0.0.1:55802", "--peer", "pricefeed:80=127.0.0.1:55801"]);
    let http = RealHttp::new(Default::default());
    let key = unique("served");
    let request = HttpRequest {
        method: http::Method::POST,
        authority: "127.0.0.1:55802".into(),
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
