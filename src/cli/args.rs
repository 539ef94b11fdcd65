//! The command line's shape (clap derive). Parsing only: `cli::main` dispatches.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::scenario::units::Span;

/// Declarative chaos testing for a replicated, queue-driven stack.
#[derive(Debug, Parser)]
#[command(name = "shakedown", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); `RUST_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios and write their reports (exit 0 pass, 1 fail, 2 inconclusive).
    Run(RunArgs),
    /// Check scenario files without running them; every error is reported.
    Validate(ValidateArgs),
    /// Run a scenario over many seeds (and random fault schedules) and shrink failures.
    Explore(ExploreArgs),
    /// Merge the shard summaries of an `explore --shard` campaign into one, and shrink each
    /// failure group once.
    Merge(MergeArgs),
    /// Re-run exactly the run that produced a report.
    Replay(ReplayArgs),
    /// Re-render HTML from report.json files (several files: one comparison page).
    Report(ReportArgs),
    /// Print the JSON Schema of the scenario format.
    Schema,
    /// List the shipped scenarios with their descriptions.
    List(ListArgs),
    /// Run one service of the stack for real.
    Serve(ServeArgs),
    /// Build the containers backend's images here, with no registry (mmdebstrap + docker).
    Image(ImageArgs),
    /// Bring a scenario's stack up in containers (no load, no faults), print its endpoints, and
    /// keep it until Ctrl-C.
    Up(UpArgs),
    /// Apply a fault by hand to a stack that is up (`shakedown up`): crash, pause, partition,
    /// heal.
    Fault(FaultArgs),
    /// Remove the containers, networks and volumes of every containers run, or of one (ours
    /// only, by label); a `shakedown up` whose stack is removed ends.
    Down(DownArgs),
    /// A database node's `archive_command` in a containers run: send one WAL file to the backup
    /// agent (`SHAKEDOWN_ARCHIVE_URL`). Exits 0 once the agent stored it.
    #[command(hide = true)]
    WalPush(WalPushArgs),
}

/// Where a scenario runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// The deterministic simulation (turmoil): no services needed.
    #[default]
    Sim,
    /// Real containers (testcontainers).
    Containers,
}

/// What `explore --swarm` draws each seed's faults from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SwarmVocabulary {
    /// The kinds, targets and parameters of the scenario's own `faults:` list (plain `--swarm`).
    Scenario,
    /// Every fault kind, over every host and group of the stack.
    All,
}

impl From<SwarmVocabulary> for crate::explore::Vocabulary {
    fn from(vocabulary: SwarmVocabulary) -> Self {
        match vocabulary {
            SwarmVocabulary::Scenario => crate::explore::Vocabulary::Scenario,
            SwarmVocabulary::All => crate::explore::Vocabulary::All,
        }
    }
}

/// A seed as `--seed` takes it: a whole number from 0 to `u64::MAX`, with a message that says so
/// (a negative one too, rather than clap's advice to write `-- -1`).
fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|_| {
        let what = if text.trim_start().starts_with('-') { "is negative" } else { "is not a whole number" };
        format!("`{text}` {what}: a seed is a whole number from 0 to {}", u64::MAX)
    })
}

/// The command line with `--swarm all` and `--swarm scenario` written `--swarm=all` and
/// `--swarm=scenario`: the vocabulary is an optional value, taken only with `=` so that
/// `--swarm FILE` never swallows the file; these two words (never a scenario file's name: write
/// `./all` for a file called `all`) keep the spelling users know.
pub fn normalise(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut args = args.into_iter().peekable();
    while let Some(arg) = args.next() {
        let vocabulary =
            args.peek().and_then(|next| next.to_str()).filter(|v| ["all", "scenario"].contains(v));
        match vocabulary {
            Some(value) if arg == "--swarm" => {
                out.push(format!("--swarm={value}").into());
                args.next();
            }
            _ => out.push(arg),
        }
    }
    out
}

/// `shakedown run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Where the scenario runs. Default: the simulation for the built-in stack, containers for a
    /// compose stack (`stack.compose`), which only runs there.
    #[arg(long, value_enum)]
    pub backend: Option<BackendName>,
    /// The seed every random choice derives from, instead of the scenario's `seed:` (a whole
    /// number, 0 to 18446744073709551615).
    #[arg(long, value_name = "SEED", value_parser = parse_seed, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Override a scenario field before validation: `--set stack.replication=async`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
    /// Output directory; each run writes `OUT/<scenario>/<seed>/` (with `--set`:
    /// `OUT/<scenario>/<seed>-<overrides>/`).
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,
    /// Run twice and report the first divergent event if the histories differ.
    #[arg(long)]
    pub check_determinism: bool,
    /// Print only the summary line.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `shakedown validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Override a scenario field before validation.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

/// `shakedown explore`.
#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// The scenario.
    pub file: PathBuf,
    /// The first seed explored, instead of the scenario's `seed:` (as `run --seed`).
    #[arg(long, value_name = "SEED", value_parser = parse_seed, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// How many seeds to explore, from the first (`--seed`, else the scenario's own).
    #[arg(long, default_value_t = 100, value_name = "COUNT")]
    pub seeds: u64,
    /// Draw a fault schedule per seed: from the scenario's own faults (`--swarm`), or from every
    /// fault kind over the whole stack (`--swarm=all`; `--swarm all` is read the same way). The
    /// vocabulary is written with `=`, so `--swarm FILE` takes FILE as the scenario.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "scenario",
        value_name = "VOCABULARY"
    )]
    pub swarm: Option<SwarmVocabulary>,
    /// Simulations in parallel (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Stop starting new seeds after this long (`10m`).
    #[arg(long, value_name = "DURATION")]
    pub time_budget: Option<String>,
    /// Output directory.
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,
    /// Judge SLO checks too (random schedules legitimately break latency targets).
    #[arg(long)]
    pub slo: bool,
    /// Most runs spent shrinking each failure group.
    #[arg(long, default_value_t = crate::explore::SHRINK_RUNS_DEFAULT, value_name = "N")]
    pub shrink_runs: usize,
    /// Group failures without shrinking them.
    #[arg(long)]
    pub no_shrink: bool,
    /// Run only the K-th of N disjoint slices of the seeds and write a shard summary for
    /// `shakedown merge` (no shrinking here: the merge shrinks once). Without K/N: the shard from
    /// JOB_COMPLETION_INDEX (from 0, as a Kubernetes Indexed Job sets it) and SHAKEDOWN_SHARDS.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "K/N")]
    pub shard: Option<String>,
    /// Seeds each shrink candidate is judged on (the failing seed and more derived from it): a
    /// candidate that fails on any of them is kept, so timing-sensitive failures shrink too.
    #[arg(long, default_value_t = crate::explore::SHRINK_SEEDS_DEFAULT, value_name = "N")]
    pub shrink_seeds: usize,
    /// Override a scenario field before validation (`--set seed=100` starts at seed 100).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

/// `shakedown merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Directories (searched recursively) or files holding the shards' summary.json.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Output directory: the merged summary and shrunk failures go where the unsharded run's
    /// would (`OUT/<scenario>/explore/`).
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,
    /// Most runs spent shrinking each failure group.
    #[arg(long, default_value_t = crate::explore::SHRINK_RUNS_DEFAULT, value_name = "N")]
    pub shrink_runs: usize,
    /// Seeds each shrink candidate is judged on (as `explore --shrink-seeds`).
    #[arg(long, default_value_t = crate::explore::SHRINK_SEEDS_DEFAULT, value_name = "N")]
    pub shrink_seeds: usize,
    /// Merge without shrinking.
    #[arg(long)]
    pub no_shrink: bool,
    /// Simulations in parallel while shrinking (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// `shakedown replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The report.json of the run to repeat.
    pub report: PathBuf,
    /// Output directory.
    #[arg(long, default_value = "reports", value_name = "DIR")]
    pub out: PathBuf,
}

/// `shakedown report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// report.json files.
    #[arg(required = true, value_name = "REPORT_JSON")]
    pub reports: Vec<PathBuf>,
    /// Where to write the HTML (default: next to the first report).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `shakedown list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The scenarios directory.
    #[arg(long, default_value = "scenarios", value_name = "DIR")]
    pub dir: PathBuf,
}

/// `shakedown serve` (its environment variables are listed in `--help`).
#[derive(Debug, Args)]
#[command(after_help = "Environment:
  SHAKEDOWN_STACK            the scenario's `stack` section as JSON [the defaults]
  SHAKEDOWN_PG_PRIMARY_URL   the writer endpoint: the db-router (watchdog, db-router:
                             the pg-primary node) [postgres://postgres@127.0.0.1:55432/postgres]
  SHAKEDOWN_PG_STANDBY_URL   the pg-replica node [postgres://postgres@127.0.0.1:55433/postgres]
  SHAKEDOWN_REAL_DIR         watchdog: fences through DIR/primary and DIR/standby
                             [/tmp/shakedown-real]
  SHAKEDOWN_AMQP_URL         RabbitMQ [amqp://guest:guest@127.0.0.1:55672/%2f]
  SHAKEDOWN_DB_ROUTER_ADMIN  watchdog: also POST its writer to this db-router admin
                             (http://HOST:PORT) [unset: not told]")]
pub struct ServeArgs {
    /// Which service: api, pricefeed, invest, inventory, ordersvc, reports, orders, gateway,
    /// worker, balancer, watchdog, db-router, links, backup; `delay` is the packet delayer a
    /// compose run starts in a service's network namespace for `latency`.
    pub service: String,
    /// Address to listen on (HTTP services; for `db-router`, the PostgreSQL proxy).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// This host's name in the stack (`api-1`, …): the saga orchestrator's name in the saga log.
    /// Default: the `HOSTNAME` environment variable, else the service's name.
    #[arg(long, value_name = "HOST")]
    pub name: Option<String>,
    /// For `links` (the containers backend's link proxy): a proxied link
    /// `NAME=LISTEN_PORT:HOST:PORT`, e.g. `pg-replica~pg-primary=15432:pg-primary:5432` (repeat).
    #[arg(long = "link", value_name = "NAME=PORT:HOST:PORT")]
    pub links: Vec<String>,
    /// For `delay`: delay packets sent to this address (repeat).
    #[arg(long = "to", value_name = "ADDR")]
    pub delay_to: Vec<String>,
    /// For `delay`: the NFQUEUE number (unique in the network namespace).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub nfqueue: u16,
    /// For `delay`: the added delay per packet, ms.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub delay_ms: u64,
    /// For `delay`: extra random delay per packet, uniform in `0..MS`.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub jitter_ms: u64,
    /// For `delay`: the seed of the jitter's draws.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// For `db-router`: the admin HTTP address (`GET /health`, `GET /route`, `POST /set_writer`).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Where a peer named in the topology really is: `--peer pricefeed:80=127.0.0.1:7001`.
    #[arg(long = "peer", value_name = "NAME=ADDR")]
    pub peers: Vec<String>,
    /// For `balancer`: an upstream `host:port` (repeat for each; default `api-1:80` …
    /// `api-N:80` from the stack, through the peer table).
    #[arg(long = "upstream", value_name = "ADDR")]
    pub upstreams: Vec<String>,
    /// Plant a bug-zoo switch (`ack-before-commit`, …; repeatable; added to the stack's).
    #[arg(long = "bug", value_name = "NAME")]
    pub bugs: Vec<String>,
    /// For `api`, `gateway` and `worker`: the RabbitMQ queue's name.
    #[arg(long, default_value = "queries")]
    pub queue: String,
    /// The queue's capacity (default: the stack's `queue.capacity`). Publishers and consumers of
    /// one queue must agree: RabbitMQ refuses a redeclaration with another capacity.
    #[arg(long, value_name = "N")]
    pub queue_capacity: Option<u32>,
}

impl ServeArgs {
    /// This host's name: `--name`, else `HOSTNAME`, else the service.
    pub fn host_name(&self) -> String {
        self.name.clone().or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_else(|| self.service.clone())
    }
}

/// `shakedown up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// The scenario whose `stack` comes up (its load and faults are not run).
    pub file: PathBuf,
    /// Override a scenario field before validation: `--set stack.api_replicas=3`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub overrides: Vec<String>,
}

/// `shakedown fault`.
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// The run to act on, when several stacks are up (`shakedown up` prints its id).
    #[arg(long, global = true, value_name = "ID")]
    pub run: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub action: FaultAction,
}

/// `shakedown fault ACTION`. TARGET is a host (`pg-primary`, `api-2`) or a group (`api`, `db`).
#[derive(Debug, Subcommand)]
pub enum FaultAction {
    /// SIGKILL the target's containers; they stay down until `heal`, or `--for` a while.
    Crash {
        /// A host or group.
        target: String,
        /// Start them again after this long (`10s`, `500ms`), then exit.
        #[arg(long = "for", value_name = "DURATION")]
        hold: Option<Span>,
    },
    /// Freeze the target's containers (cgroup freezer); until `heal`, or `--for` a while.
    Pause {
        /// A host or group.
        target: String,
        /// Thaw them after this long, then exit.
        #[arg(long = "for", value_name = "DURATION")]
        hold: Option<Span>,
    },
    /// Cut A off from B (DROP rules in each container, input and output); until `heal`, or
    /// `--for` a while.
    Partition {
        /// One side: a host or group.
        a: String,
        /// The other side: a host or group.
        b: String,
        /// Drop only what A sends to B.
        #[arg(long)]
        one_way: bool,
        /// Heal it after this long, then exit.
        #[arg(long = "for", value_name = "DURATION")]
        hold: Option<Span>,
    },
    /// Undo every fault: unpause, start what was killed, delete every partition rule.
    Heal,
}

/// `shakedown wal-push PATH NAME` (`archive_command = 'shakedown wal-push %p %f'`).
#[derive(Debug, Args)]
pub struct WalPushArgs {
    /// The file (`%p`, relative to the data directory).
    pub path: std::path::PathBuf,
    /// Its name in the archive (`%f`).
    pub name: String,
}

/// `shakedown down`.
#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove only this run (default: every run of ours, live or not).
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
}

/// `shakedown image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ImageAction,
}

/// `shakedown image ACTION`.
#[derive(Debug, Subcommand)]
pub enum ImageAction {
    /// Build the node image (Debian base by mmdebstrap, then a layer with the binary); prints
    /// its tag.
    Build {
        /// The `shakedown` binary to put in the image (default: this one).
        #[arg(long, value_name = "FILE")]
        binary: Option<PathBuf>,
    },
    /// Make `shakedown/debian:bookworm` (plain Debian bookworm by mmdebstrap, this host's apt
    /// sources) so a compose stack's Dockerfile can start `FROM` it with no registry.
    Debian,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args = std::iter::once("shakedown").chain(args.iter().copied()).map(std::ffi::OsString::from);
        Cli::try_parse_from(normalise(args))
    }

    fn fault(args: &[&str]) -> FaultArgs {
        match parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).command {
            Command::Fault(fault) => fault,
            other => panic!("{other:?}"),
        }
    }

    /// `--for` takes a scenario duration; `--run` goes before or after the action.
    #[test]
    fn fault_arguments_parse() {
        let crash = fault(&["fault", "crash", "pg-primary", "--for", "10s"]);
        assert_eq!(crash.run, None);
        let FaultAction::Crash { target, hold } = crash.action else { panic!() };
        assert_eq!((target.as_str(), hold.map(Span::get)), ("pg-primary", Some(Duration::from_secs(10))));
        let partition = fault(&[
            "fault",
            "partition",
            "api",
            "pg-replica",
            "--one-way",
            "--for",
            "500ms",
            "--run",
            "ab12",
        ]);
        assert_eq!(partition.run.as_deref(), Some("ab12"));
        let FaultAction::Partition { a, b, one_way, hold } = partition.action else { panic!() };
        assert_eq!((a.as_str(), b.as_str(), one_way), ("api", "pg-replica", true));
        assert_eq!(hold.map(Span::get), Some(Duration::from_millis(500)));
        assert_eq!(fault(&["fault", "--run", "ab12", "heal"]).run.as_deref(), Some("ab12"));
        assert!(matches!(fault(&["fault", "pause", "api"]).action, FaultAction::Pause { hold: None, .. }));
    }

    #[test]
    fn bad_fault_arguments_are_refused() {
        let bad_duration = parse(&["fault", "crash", "pg-primary", "--for", "10"]).unwrap_err().to_string();
        assert!(bad_duration.contains("the unit is missing"), "{bad_duration}");
        assert!(parse(&["fault", "partition", "api"]).is_err());
        assert!(parse(&["fault", "explode", "api"]).is_err());
    }

    /// Goal: plain `--swarm` keeps its meaning, `--swarm all` widens it, and the file may come
    /// before or after the flag.
    #[test]
    fn swarm_takes_an_optional_vocabulary() {
        let swarm = |args: &[&str]| match parse(args).unwrap().command {
            Command::Explore(explore) => (explore.swarm, explore.file),
            _ => panic!("not explore"),
        };
        let file = std::path::PathBuf::from("s.yaml");
        assert_eq!(swarm(&["explore", "s.yaml"]), (None, file.clone()));
        assert_eq!(swarm(&["explore", "s.yaml", "--swarm"]), (Some(SwarmVocabulary::Scenario), file.clone()));
        assert_eq!(
            swarm(&["explore", "s.yaml", "--swarm", "--seeds", "3"]).0,
            Some(SwarmVocabulary::Scenario)
        );
        assert_eq!(
            swarm(&["explore", "s.yaml", "--swarm", "all"]),
            (Some(SwarmVocabulary::All), file.clone())
        );
        assert_eq!(
            swarm(&["explore", "--swarm", "all", "s.yaml"]),
            (Some(SwarmVocabulary::All), file.clone())
        );
        assert!(parse(&["explore", "s.yaml", "--swarm", "everything"]).is_err());
        // The file right after `--swarm` is the scenario, not the vocabulary.
        assert_eq!(swarm(&["explore", "--swarm", "s.yaml"]), (Some(SwarmVocabulary::Scenario), file.clone()));
        assert_eq!(
            swarm(&["explore", "--swarm", "s.yaml", "--seeds", "3"]),
            (Some(SwarmVocabulary::Scenario), file.clone())
        );
        assert_eq!(swarm(&["explore", "--swarm=all", "s.yaml"]), (Some(SwarmVocabulary::All), file));
    }

    /// Goal: seeds mean the same on every command. `run --seed N` runs seed N, `explore --seed N`
    /// starts at N (`--seeds` counts them), and a seed that is not a whole number from 0 — a
    /// negative one too — is refused with a message saying what a seed is.
    #[test]
    fn seeds_are_consistent_across_commands() {
        let Command::Run(run) = parse(&["run", "s.yaml", "--seed", "5"]).unwrap().command else { panic!() };
        assert_eq!(run.seed, Some(5));
        let Command::Explore(explore) =
            parse(&["explore", "s.yaml", "--seed", "5", "--seeds", "3"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!((explore.seed, explore.seeds), (Some(5), 3));
        for command in ["run", "explore"] {
            let negative = parse(&[command, "s.yaml", "--seed", "-1"]).unwrap_err().to_string();
            assert!(negative.contains("`-1` is negative: a seed is a whole number from 0 to"), "{negative}");
            assert!(!negative.contains("-- -1"), "{negative}");
            let word = parse(&[command, "s.yaml", "--seed", "seven"]).unwrap_err().to_string();
            assert!(word.contains("`seven` is not a whole number"), "{word}");
        }
    }

    #[test]
    fn up_and_down_arguments_parse() {
        let Command::Up(up) = parse(&["up", "s.yaml", "--set", "stack.api_replicas=3"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!(
            (up.file, up.overrides),
            (PathBuf::from("s.yaml"), vec!["stack.api_replicas=3".to_string()])
        );
        let Command::Down(down) = parse(&["down"]).unwrap().command else { panic!() };
        assert_eq!(down.run, None);
        let Command::Down(down) = parse(&["down", "--run", "ab12"]).unwrap().command else { panic!() };
        assert_eq!(down.run.as_deref(), Some("ab12"));
    }
}
