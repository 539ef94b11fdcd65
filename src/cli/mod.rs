//! The command line: argument types (`args`) and one function per subcommand. `main` parses,
//! sets up logging and dispatches; each command returns its exit code (`crate::exit`).

pub mod args;
mod explore;
mod fault;
mod image;
mod list;
mod merge;
mod replay;
mod report;
mod run;
mod serve;
mod up;
mod validate;

use clap::Parser;

use crate::exit;
use args::{Cli, Command};

/// Parse the arguments, run the command, and return the process exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse_from(args::normalise(std::env::args_os())) {
        Ok(cli) => cli,
        Err(error) => {
            let code = match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => exit::PASS,
                _ => exit::BAD_INPUT,
            };
            let _ = error.print();
            return code;
        }
    };
    init_logging(cli.verbose);
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Schema => {
            let schema = crate::scenario::json_schema();
            println!("{}", serde_json::to_string_pretty(&schema).expect("schema serialises"));
            exit::PASS
        }
        Command::List(args) => list::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Explore(args) => explore::run(&args),
        Command::Merge(args) => merge::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Image(args) => image::run(&args),
        Command::Up(args) => up::up(&args),
        Command::Fault(args) => fault::run(&args),
        Command::Down(args) => up::down(&args),
        Command::WalPush(args) => serve::wal_push(&args),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(crate::sim::SimClock)
        .with_writer(std::io::stderr)
        .try_init();
}
