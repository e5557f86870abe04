//! `fulcrum`: the server, the demo, a command-line client, the benchmark
//! and the verifier, in one binary.

mod bench;
mod client_cmd;
mod demo;
mod server_cmd;
mod verify;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the request path allocates
/// small buffers (requests, records, batches) on every command, and glibc's
/// malloc/free were a sixth of the server's CPU in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fulcrum",
    version,
    about = "Fulcrum: a distributed key-value database with a consistency lever per keyspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Server(Box<server_cmd::ServerArgs>),
    /// Start a local 3-node cluster on temporary data, take a guided tour, serve until Ctrl-C.
    Demo(demo::DemoArgs),
    /// GET a key.
    Get(client_cmd::GetArgs),
    /// SET a key.
    Set(client_cmd::SetArgs),
    /// DEL keys.
    Del(client_cmd::DelArgs),
    /// List keys (SCAN), optionally matching a pattern.
    Scan(client_cmd::ScanArgs),
    /// Keyspace administration.
    Keyspace(client_cmd::KeyspaceArgs),
    /// Cluster membership administration.
    Cluster(client_cmd::ClusterArgs),
    /// Force a full Merkle anti-entropy pass on a node (eventual keyspaces).
    Repair(client_cmd::RepairArgs),
    /// Closed-loop load generator: ops/s and latency percentiles.
    Bench(bench::BenchArgs),
    /// The N/R/W table: for each (W,R), whether reads see the latest write and how many failures each survives.
    Explain(ExplainArgs),
    /// Runs a cluster under faults and checks the recorded history.
    Verify(verify::VerifyArgs),
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// Replica count N.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=7))]
    replicas: u32,
}

/// What `main` runs once the arguments are parsed.
enum Run {
    /// `fulcrum server` with its resolved configuration.
    Server(fulcrum_node::NodeConfig),
    Other(Command),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // A server's configuration comes first: its `threads` sizes the runtime.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    let command = match cli.command {
        Command::Server(a) => match a.into_config() {
            Ok(config) => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                builder.worker_threads(config.worker_threads(cores));
                Run::Server(config)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        other => Run::Other(other),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let command = match command {
            Run::Server(config) => return server_cmd::run(config).await,
            Run::Other(command) => command,
        };
        match command {
            // Resolved into `Run::Server` above.
            Command::Server(_) => Ok(()),
            Command::Demo(a) => demo::run(a).await,
            Command::Get(a) => client_cmd::get(a).await,
            Command::Set(a) => client_cmd::set(a).await,
            Command::Del(a) => client_cmd::del(a).await,
            Command::Scan(a) => client_cmd::scan(a).await,
            Command::Keyspace(a) => client_cmd::keyspace(a).await,
            Command::Cluster(a) => client_cmd::cluster(a).await,
            Command::Repair(a) => client_cmd::repair(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Verify(a) => verify::run(a).await,
            Command::Explain(a) => {
                print!("{}", fulcrum_core::explain::render(a.replicas));
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
