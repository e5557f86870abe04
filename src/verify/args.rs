//! The flags of `fulcrum verify`, their validation into [`Settings`], and
//! the command line that reproduces a run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use fulcrum_core::level::Level;

use super::nemesis::{self, Fault};
use super::report;

/// What the clients do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// Reads and writes of unique values (plus compare-and-set on strong keyspaces).
    Register,
    /// INCR and reads of counters (strong keyspaces only).
    Counter,
    /// A grow-only set per key: VSET siblings (eventual) or compare-and-set appends (strong).
    Set,
}

/// The keyspace mode under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeArg {
    /// `KEYSPACE CREATE … MODE strong`: claims linearizability.
    Strong,
    /// `KEYSPACE CREATE … MODE eventual REPLICAS 3` at QUORUM/QUORUM.
    Eventual,
}

/// A stronger claim than the mode makes, for known-bad control runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimArg {
    /// Also check linearizability (register workload), whatever the mode.
    Linearizable,
}

/// Flags of `fulcrum verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// What the clients do [default: register].
    #[arg(long, value_enum)]
    pub(super) workload: Option<WorkloadKind>,
    /// Keyspace mode under test [default: strong].
    #[arg(long, value_enum)]
    pub(super) mode: Option<ModeArg>,
    /// Cluster size (3 or 5 are typical).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(3..=9))]
    pub(super) nodes: u16,
    /// Faults to inject, comma separated: none, partition, kill, pause, clock; membership changes: join (a node held back at the start joins), leave (a member other than n1 leaves).
    #[arg(long, default_value = "none", value_delimiter = ',', value_enum)]
    pub(super) nemesis: Vec<Fault>,
    /// How long the clients run, e.g. 60s, 90s, 2m, 1m30s, 500ms.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(super) duration: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub(super) clients: u32,
    /// Seed for the workload and the nemesis (printed; reuse it to replay a schedule).
    #[arg(long)]
    pub(super) seed: Option<u64>,
    /// Number of keys the clients contend on.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(super) keys: u32,
    /// First of 4 consecutive ports per node (RESP, HTTP, peer, proxy; with --docker: 2, the published RESP and HTTP); free ports if absent.
    #[arg(long)]
    pub(super) base_port: Option<u16>,
    /// Run the nodes as containers of a compose project (image from scripts/docker-build.sh) instead of local processes.
    #[arg(long)]
    pub(super) docker: bool,
    /// With --docker: the image every node runs.
    #[arg(long, value_name = "IMAGE", default_value = super::docker::DEFAULT_IMAGE, requires = "docker")]
    pub(super) docker_image: String,
    /// With --docker: the compose project name [default: a fresh one per run].
    #[arg(long, value_name = "NAME", requires = "docker")]
    pub(super) docker_project: Option<String>,
    /// Keep the nodes' data directories and logs (the path is printed).
    #[arg(long)]
    pub(super) keep_data: bool,
    /// Save the recorded history (JSON) to this file, for `--check-history`.
    #[arg(long, value_name = "FILE")]
    pub(super) history_out: Option<PathBuf>,
    /// Print one JSON document instead of text (no progress bar).
    #[arg(long)]
    pub(super) json: bool,
    /// Re-check a history saved with --history-out instead of running a cluster.
    #[arg(long, value_name = "FILE")]
    pub(super) check_history: Option<PathBuf>,
    /// Known-bad control: claim linearizability whatever the mode.
    #[arg(long, value_enum, hide = true)]
    pub(super) claim: Option<ClaimArg>,
    /// Eventual keyspaces: client consistency levels as READ,WRITE (default QUORUM,QUORUM).
    #[arg(long, value_delimiter = ',', hide = true)]
    pub(super) levels: Option<Vec<String>>,
    /// Known-bad control: `FAULT DELAY-PUTS ms` on the last node during the run.
    #[arg(long, value_name = "MS", hide = true)]
    pub(super) delay_puts: Option<u64>,
    /// Known-bad control: `FAULT STALE-READS on` on every node during the
    /// run (strong keyspaces: reads served from local state, no read index).
    #[arg(long, hide = true)]
    pub(super) stale_reads: bool,
}

impl VerifyArgs {
    pub fn offline_overrides(&self) -> report::Overrides {
        report::Overrides {
            workload: self.workload,
            mode: self.mode,
            claim: self.claim,
            levels: self.levels.clone(),
            nemesis: if self.nemesis == [Fault::None] {
                None
            } else {
                Some(self.nemesis.clone())
            },
        }
    }
}

/// Validated settings of a live run.
pub struct Settings {
    pub(super) workload: WorkloadKind,
    pub(super) mode: ModeArg,
    pub(super) faults: Vec<Fault>,
    pub(super) seed: u64,
    /// Eventual keyspaces: (read, write) levels of the clients.
    pub(super) levels: Option<(Level, Level)>,
}

impl Settings {
    pub fn from_args(args: &VerifyArgs) -> anyhow::Result<Settings> {
        let workload = args.workload.unwrap_or(WorkloadKind::Register);
        let mode = args.mode.unwrap_or(ModeArg::Strong);
        if workload == WorkloadKind::Counter && mode == ModeArg::Eventual {
            bail!(
                "the counter workload needs --mode strong: INCR on an eventual keyspace answers \
                 NOTSTRONG (a read-modify-write over leaderless replicas would lose increments)"
            );
        }
        if args.claim == Some(ClaimArg::Linearizable) && workload != WorkloadKind::Register {
            bail!("--claim linearizable applies to the register workload");
        }
        let faults = nemesis::normalize(&args.nemesis)?;
        if faults.contains(&Fault::Leave) && !faults.contains(&Fault::Join) && args.nodes < 4 {
            bail!(
                "--nemesis leave needs at least 4 members so that 3 replicas stay: use --nodes 4 \
                 or more, or --nemesis join,leave (the join comes first)"
            );
        }
        let levels = match (mode, &args.levels) {
            (ModeArg::Strong, Some(_)) => {
                bail!("--levels applies to eventual keyspaces only")
            }
            (ModeArg::Strong, None) => None,
            (ModeArg::Eventual, None) => Some((Level::Quorum, Level::Quorum)),
            (ModeArg::Eventual, Some(pair)) => Some(parse_levels(pair)?),
        };
        if args.delay_puts.is_some() && mode != ModeArg::Eventual {
            bail!("--delay-puts delays eventual replica writes; use it with --mode eventual");
        }
        if args.stale_reads && mode != ModeArg::Strong {
            bail!("--stale-reads breaks strong reads; use it with --mode strong");
        }
        if args.stale_reads && args.docker {
            bail!("--stale-reads runs on local processes only, not with --docker");
        }
        let seed = args.seed.unwrap_or_else(rand::random);
        Ok(Settings {
            workload,
            mode,
            faults,
            seed,
            levels,
        })
    }
}

fn parse_levels(pair: &[String]) -> anyhow::Result<(Level, Level)> {
    let [read, write] = pair else {
        bail!("--levels takes READ,WRITE, e.g. ONE,ONE");
    };
    let parse = |s: &str| -> anyhow::Result<Level> {
        let level: Level = s
            .parse()
            .with_context(|| format!("bad consistency level {s:?}"))?;
        if matches!(level, Level::Linearizable | Level::Serializable) {
            bail!("{level} is a strong-keyspace level; --levels is for eventual keyspaces");
        }
        Ok(level)
    };
    Ok((parse(read)?, parse(write)?))
}

/// `60s`, `500ms`, `2m`, `1m30s`, `1h`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "bad duration {text:?}: expected e.g. 60s, 500ms, 1m30s"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            unit => return Err(format!("bad duration {text:?}: unknown unit {unit:?}")),
        };
        total += part;
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(format!("bad duration {text:?}: must be positive"));
    }
    Ok(total)
}

/// The command line that replays this run's schedule.
pub fn reproduce_command(args: &VerifyArgs, s: &Settings) -> String {
    let mut cmd = format!(
        "fulcrum verify --workload {} --mode {} --nodes {} --nemesis {} --duration {}ms --clients {} --keys {} --seed {}",
        enum_name(s.workload),
        enum_name(s.mode),
        args.nodes,
        nemesis::describe(&s.faults),
        args.duration.as_millis(),
        args.clients,
        args.keys,
        s.seed
    );
    if let Some(claim) = args.claim {
        cmd.push_str(&format!(" --claim {}", enum_name(claim)));
    }
    if let (Some((r, w)), Some(_)) = (s.levels, &args.levels) {
        cmd.push_str(&format!(" --levels {r},{w}"));
    }
    if let Some(ms) = args.delay_puts {
        cmd.push_str(&format!(" --delay-puts {ms}"));
    }
    if args.stale_reads {
        cmd.push_str(" --stale-reads");
    }
    if args.docker {
        cmd.push_str(" --docker");
        if args.docker_image != super::docker::DEFAULT_IMAGE {
            cmd.push_str(&format!(" --docker-image {}", args.docker_image));
        }
    }
    cmd
}

/// The command-line spelling of a value-enum variant.
pub fn enum_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: VerifyArgs,
    }

    fn parse(argv: &[&str]) -> Result<VerifyArgs, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("verify").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn docker_runs_reproduce_with_docker_and_docker_flags_need_it() {
        let args = parse(&["--docker", "--nodes", "5", "--seed", "3"]).expect("parse");
        let settings = Settings::from_args(&args).expect("settings");
        let cmd = reproduce_command(&args, &settings);
        assert!(cmd.contains("--nodes 5"), "{cmd}");
        assert!(cmd.ends_with(" --docker"), "{cmd}");
        let custom =
            parse(&["--docker", "--docker-image", "fulcrum:x", "--seed", "3"]).expect("parse");
        let settings = Settings::from_args(&custom).expect("settings");
        assert!(
            reproduce_command(&custom, &settings).ends_with(" --docker --docker-image fulcrum:x")
        );
        assert!(parse(&["--docker-image", "fulcrum:x"]).is_err());
        assert!(parse(&["--docker-project", "p"]).is_err());
        let local = parse(&["--seed", "3"]).expect("parse");
        let settings = Settings::from_args(&local).expect("settings");
        assert!(!reproduce_command(&local, &settings).contains("docker"));
    }

    #[test]
    fn membership_changes_need_room_to_leave_in_either_mode() {
        let strong = parse(&["--mode", "strong", "--nemesis", "join,leave"]).expect("parse");
        let s = Settings::from_args(&strong).expect("strong voters move with the ring");
        assert_eq!(s.faults, vec![Fault::Join, Fault::Leave]);
        let small_strong = parse(&["--mode", "strong", "--nemesis", "leave"]).expect("parse");
        let e = Settings::from_args(&small_strong).err().expect("refused");
        assert!(e.to_string().contains("at least 4"), "{e}");
        let small = parse(&["--mode", "eventual", "--nemesis", "leave"]).expect("parse");
        let e = Settings::from_args(&small).err().expect("refused");
        assert!(e.to_string().contains("at least 4"), "{e}");
        let both = parse(&["--mode", "eventual", "--nemesis", "leave,join"]).expect("parse");
        let s = Settings::from_args(&both).expect("join first makes room");
        assert_eq!(s.faults, vec![Fault::Join, Fault::Leave]);
        let four = parse(&["--mode", "eventual", "--nodes", "4", "--nemesis", "leave"]);
        assert!(Settings::from_args(&four.expect("parse")).is_ok());
    }

    #[test]
    fn levels_parse() {
        let pair = vec!["one".to_string(), "ONE".to_string()];
        assert_eq!(parse_levels(&pair).ok(), Some((Level::One, Level::One)));
        let strong = vec!["LINEARIZABLE".to_string(), "ONE".to_string()];
        assert!(parse_levels(&strong).is_err());
    }
}
