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
