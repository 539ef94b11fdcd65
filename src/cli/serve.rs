//! `shakedown serve SERVICE` and `shakedown wal-push`: the arguments handed to the library
//! (`real::serve`, `real::wal_push`; the link proxy is the containers backend's
//! `containers::proxy`), their errors printed, exit codes returned. Needs a binary built with
//! `--features real`.

use super::args::{ServeArgs, WalPushArgs};
use crate::exit;

/// `shakedown wal-push`: exit 0 once the agent stored the file; otherwise 1, and PostgreSQL
/// retries — unless the `wal-archive-gap` bug reports success and so loses the segment.
pub(super) fn wal_push(args: &WalPushArgs) -> u8 {
    #[cfg(feature = "real")]
    {
        use crate::real::wal_push;
        match wal_push::push(&args.path, &args.name) {
            Ok(()) => exit::PASS,
            Err(error) if wal_push::ignore_failures() => {
                eprintln!(
                    "shakedown wal-push {}: {error}; ignored (the wal-archive-gap bug): the archive will miss it",
                    args.name
                );
                exit::PASS
            }
            Err(error) => {
                eprintln!("shakedown wal-push {}: {error}; PostgreSQL retries", args.name);
                exit::FAIL
            }
        }
    }
    #[cfg(not(feature = "real"))]
    {
        eprintln!("shakedown wal-push {}: this binary was built without the real adapters", args.name);
        exit::BAD_INPUT
    }
}

/// Serve until interrupted.
pub(super) fn run(args: &ServeArgs) -> u8 {
    if args.service == "links" {
        return links(args);
    }
    if args.service == "delay" {
        return delay(args);
    }
    #[cfg(feature = "real")]
    {
        use crate::real::serve::{self, ServeError, ServeOptions};
        let options = ServeOptions {
            service: args.service.clone(),
            listen: args.listen.clone(),
            host_name: args.host_name(),
            admin: args.admin.clone(),
            peers: args.peers.clone(),
            upstreams: args.upstreams.clone(),
            bugs: args.bugs.clone(),
            queue: args.queue.clone(),
            queue_capacity: args.queue_capacity,
        };
        match serve::run(&options) {
            Ok(()) => exit::PASS,
            Err(error) => {
                eprintln!("shakedown serve {}: {error}", args.service);
                match error {
                    ServeError::BadInput(_) => exit::BAD_INPUT,
                    ServeError::Failed(_) => exit::HARNESS_ERROR,
                }
            }
        }
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

/// The packet delayer of a compose run's `latency` (needs the `containers` feature and, in its
/// network namespace, NET_ADMIN and iptables): until SIGTERM.
fn delay(args: &ServeArgs) -> u8 {
    #[cfg(feature = "containers")]
    {
        use crate::containers::delayer::{DelaySpec, run};
        use std::time::Duration;
        if args.delay_to.is_empty() {
            eprintln!("shakedown serve delay: nothing to delay; name the far side with `--to ADDR` (repeat)");
            return exit::BAD_INPUT;
        }
        let spec = DelaySpec {
            queue: args.nfqueue,
            to: args.delay_to.clone(),
            delay: Duration::from_millis(args.delay_ms),
            jitter: Duration::from_millis(args.jitter_ms),
            seed: args.seed,
        };
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        match runtime.block_on(run(spec)) {
            Ok(_) => exit::PASS,
            Err(error) => {
                eprintln!("shakedown serve delay: {error}");
                exit::HARNESS_ERROR
            }
        }
    }
    #[cfg(not(feature = "containers"))]
    {
        let _ = args;
        eprintln!("shakedown serve delay: the delayer needs a binary built with `--features containers`");
        exit::BAD_INPUT
    }
}

/// The link proxy of a containers run: `--link NAME=PORT:HOST:PORT` each, steered on
/// `--listen` (needs the `containers` feature, which every node image's binary has).
fn links(args: &ServeArgs) -> u8 {
    #[cfg(feature = "containers")]
    {
        use crate::containers::proxy::{LinkSpec, serve};
        let links = match args.links.iter().map(|l| LinkSpec::parse(l)).collect::<Result<Vec<_>, _>>() {
            Ok(links) => links,
            Err(error) => {
                eprintln!("shakedown serve links: {error}");
                return exit::BAD_INPUT;
            }
        };
        eprintln!("links: {} proxied, admin on http://{}", links.len(), args.listen);
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        match runtime.block_on(serve(links, &args.listen)) {
            Ok(()) => exit::PASS,
            Err(error) => {
                eprintln!("shakedown serve links: {error}");
                exit::HARNESS_ERROR
            }
        }
    }
    #[cfg(not(feature = "containers"))]
    {
        let _ = args;
        eprintln!("shakedown serve links: the link proxy needs a binary built with `--features containers`");
        exit::BAD_INPUT
    }
}
