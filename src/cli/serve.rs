//! `shakedown serve SERVICE`: run one service of the stack for real — the same `src/stack/` code
//! the simulation runs — on the real adapters: PostgreSQL (`SHAKEDOWN_PG_PRIMARY_URL`,
//! `SHAKEDOWN_PG_STANDBY_URL`), RabbitMQ (`SHAKEDOWN_AMQP_URL`), peers by `--peer`. Needs a
//! binary built with `--features real`.
//!
//! Limitation: the writer endpoint lives in each process (the watchdog's `set_writer` repoints
//! only its own); across processes, put a proxy that follows the primary (HAProxy, as the
//! simulation's db-router does) in front of PostgreSQL and point every service's primary URL at it.

use super::args::ServeArgs;
#[cfg(not(feature = "real"))]
use crate::exit;

/// Serve until interrupted.
pub(super) fn run(args: &ServeArgs) -> u8 {
    #[cfg(feature = "real")]
    {
        real::run(args)
    }
    #[cfg(not(feature = "real"))]
    {
        eprintln!(
            "shakedown serve {}: this binary was built without the real adapters; rebuild with `cargo build --release --features real` (PostgreSQL and RabbitMQ: `make real-up` starts them on loopback)",
            args.service
        );
        exit::BAD_INPUT
    }
}

#[cfg(feature = "real")]
mod real {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::ServeArgs;
    use crate::exit;
    use crate::real::PgCluster;
    use crate::real::http::RealHttp;
    use crate::real::rabbit::{RabbitConfig, RabbitConsumers, RabbitPublisher};
    use crate::scenario::model::{Bug, WatchdogConfig};
    use crate::stack::bugs::Bugs;
    use crate::stack::wire::ParticipantConfig;
    use crate::stack::{
        balancer, gateway, inventory, invest, orders, ordersvc, pricefeed, reports, watchdog, worker,
    };

    const SERVICES: [&str; 10] = [
        "pricefeed",
        "invest",
        "inventory",
        "ordersvc",
        "reports",
        "orders",
        "gateway",
        "worker",
        "balancer",
        "watchdog",
    ];

    pub(super) fn run(args: &ServeArgs) -> u8 {
        if !SERVICES.contains(&args.service.as_str()) {
            eprintln!(
                "shakedown serve: no service `{}`; expected one of: {}",
                args.service,
                SERVICES.join(", ")
            );
            return exit::BAD_INPUT;
        }
        let mut peers = BTreeMap::new();
        for peer in &args.peers {
            let Some((name, address)) = peer.split_once('=') else {
                eprintln!(
                    "shakedown serve: --peer {peer}: expected NAME=ADDR, e.g. pricefeed:80=127.0.0.1:7001"
                );
                return exit::BAD_INPUT;
            };
            peers.insert(name.to_owned(), address.to_owned());
        }
        let mut bugs = Vec::new();
        for name in &args.bugs {
            match serde_json::from_value::<Bug>(serde_json::json!(name)) {
                Ok(bug) => bugs.push(bug),
                Err(_) => {
                    eprintln!(
                        "shakedown serve: --bug {name}: not a bug-zoo switch (see README, \"The bug zoo\")"
                    );
                    return exit::BAD_INPUT;
                }
            }
        }
        let bugs = Bugs::from_list(&bugs);
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        match runtime.block_on(serve(args, RealHttp::new(peers), bugs)) {
            Ok(()) => exit::PASS,
            Err(error) => {
                eprintln!("shakedown serve {}: {error}", args.service);
                exit::HARNESS_ERROR
            }
        }
    }

    async fn serve(args: &ServeArgs, http: RealHttp, bugs: Bugs) -> Result<(), String> {
        let db = || async {
            let cluster = PgCluster::from_env().map_err(|e| e.to_string())?;
            cluster.migrate().await.map_err(|e| format!("PostgreSQL: {e}"))?;
            Ok::<_, String>(Arc::new(cluster))
        };
        let queue = RabbitConfig::from_env(&args.queue, args.queue_capacity);
        let pc = ParticipantConfig::default;
        let router = match args.service.as_str() {
            "pricefeed" => {
                pricefeed::router(pricefeed::PricefeedState::new(pricefeed::PricefeedControl::default()))
            }
            "invest" => {
                let config = invest::InvestConfig { bugs, ..invest::InvestConfig::default() };
                invest::router(invest::InvestState::new(db().await?, Arc::new(http), config))
            }
            "inventory" => inventory::router(inventory::InventoryState::new(db().await?, pc())),
            "ordersvc" => ordersvc::router(ordersvc::OrderSvcState::new(db().await?, pc())),
            "reports" => reports::router(reports::ReportsState::new(db().await?, pc())),
            "orders" => {
                let config = orders::OrdersConfig { bugs, ..orders::OrdersConfig::default() };
                orders::router(orders::OrdersState::new(Arc::new(http), db().await?, config))
            }
            "gateway" => {
                let publisher =
                    RabbitPublisher::connect(&queue).await.map_err(|e| format!("RabbitMQ: {e}"))?;
                let config = gateway::GatewayConfig { bugs, ..gateway::GatewayConfig::default() };
                gateway::router(gateway::GatewayState::new(db().await?, Arc::new(publisher), config))
            }
            "balancer" => {
                let config =
                    balancer::LbConfig { upstreams: args.upstreams.clone(), ..balancer::LbConfig::default() };
                let state = balancer::BalancerState::new(Arc::new(http), config);
                tokio::spawn(balancer::run_health_checks(state.clone()));
                balancer::router(state)
            }
            "worker" => {
                let config = worker::WorkerConfig { bugs, ..worker::WorkerConfig::default() };
                eprintln!("worker consuming {} at {}", queue.queue, queue.uri);
                worker::run(
                    Arc::new(RabbitConsumers::new(queue)),
                    db().await?,
                    config,
                    worker::WorkerControl::default(),
                )
                .await;
                return Ok(());
            }
            _ => {
                eprintln!("watchdog probing the PostgreSQL primary");
                let state = watchdog::WatchdogState::default();
                watchdog::run(db().await?, WatchdogConfig::default(), bugs, state).await;
                return Ok(());
            }
        };
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("listen on {}: {e}", args.listen))?;
        eprintln!("{} listening on http://{}", args.service, args.listen);
        axum::serve(listener, router).await.map_err(|e| e.to_string())
    }
}
