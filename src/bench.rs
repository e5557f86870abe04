//! `fulcrum bench`: a closed-loop load generator over RESP or etcd's API.
//!
//! Each of `--clients` tasks owns one connection and loops: pick
//! `--pipeline` operations (a uniform key `key:<n>` out of `--keys`, GET
//! with probability `--read-ratio`, else SET of a `--value-size` value),
//! send them, wait for the replies, record the round trip. Nothing is
//! measured during `--warmup`; then operations completing within
//! `--duration` are counted. Latency is recorded per operation in a
//! per-client HDR histogram (microseconds, 3 significant figures); with a
//! pipeline every operation of a batch gets the batch's round-trip time, as
//! `redis-benchmark -P` does. Error replies are counted by code (the first
//! word of `-ERR ...`) and never as successes; a failed connection counts
//! its batch as `client:<kind>` errors and is replaced.
//!
//! The system under test is a [`target::Target`], chosen by `--target`:
//! RESP ([`target::RespTarget`], Fulcrum or Redis) or etcd
//! ([`etcd::EtcdTarget`]: SET is a put, GET a linearizable range read).

#[cfg(feature = "etcd")]
mod etcd;
mod summary;
mod target;
mod workload;

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

#[cfg(feature = "etcd")]
use etcd::EtcdTarget;
use summary::{Recorder, RunInfo, Summary};
use target::{Endpoint, Op, Outcome, RespTarget, Target};

/// Pause before trying to replace a failed connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// How often the progress line is refreshed.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// Flags of `fulcrum bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to load: a RESP server (Fulcrum, Redis) or etcd (v3 gRPC API).
    #[arg(long, value_enum, default_value_t = TargetKind::Resp)]
    target: TargetKind,
    /// Address(es) to load (host:port), comma separated; clients are spread over them round-robin.
    #[arg(
        long,
        default_value = "127.0.0.1:7379",
        value_delimiter = ',',
        env = "FULCRUM_ADDR"
    )]
    addr: Vec<String>,
    /// Concurrent clients, each with its own connection.
    #[arg(long, default_value_t = 50, value_parser = positive_usize)]
    clients: usize,
    /// Measured time, e.g. 10s, 500ms, 2m, 1m30s.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    duration: Duration,
    /// Unmeasured time before the measurement starts.
    #[arg(long, default_value = "1s", value_parser = workload::parse_duration)]
    warmup: Duration,
    /// Keyspace size: keys are key:0 .. key:<keys-1>, picked uniformly.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Bytes per SET value.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Fraction of operations that are GETs (0.0 to 1.0); the rest are SETs.
    #[arg(long, default_value_t = 0.5, value_parser = ratio)]
    read_ratio: f64,
    /// Keyspace each connection selects first (USE).
    #[arg(long, short = 'k')]
    keyspace: Option<String>,
    /// Create --keyspace with this mode if it does not exist.
    #[arg(long, value_name = "MODE", requires = "keyspace", value_parser = ["eventual", "strong"])]
    create_keyspace: Option<String>,
    /// Operations per round trip on each connection.
    #[arg(long, default_value_t = 1, value_parser = positive_usize)]
    pipeline: usize,
    /// Print only a one-line JSON summary on stdout (no progress bar).
    #[arg(long)]
    json: bool,
    /// Seed for key and operation choices [default: random, printed in the summary].
    #[arg(long)]
    seed: Option<u64>,
}

/// The kinds of system `fulcrum bench` can load.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    /// RESP: GET and SET (Fulcrum, Redis).
    Resp,
    /// etcd: Range (linearizable) and Put.
    Etcd,
}

fn positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match workload::parse_duration(s)? {
        Duration::ZERO => Err("must be longer than zero".to_string()),
        d => Ok(d),
    }
}

fn ratio(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&r) {
        Ok(r)
    } else {
        Err(format!("{r} is not between 0.0 and 1.0"))
    }
}

/// What every client does, shared read-only.
#[derive(Debug)]
struct Plan {
    keys: u64,
    read_ratio: f64,
    pipeline: usize,
    value: Vec<u8>,
    seed: u64,
}

/// When the warm-up ends and when the measured window ends.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    warmup_end: Instant,
    end: Instant,
}

impl Clock {
    /// Whether an operation completing at `t` is measured.
    fn measures(&self, t: Instant) -> bool {
        t >= self.warmup_end && t < self.end
    }
}

/// Counters the progress bar reads while clients run (measured window
/// only).
#[derive(Debug, Default)]
struct Live {
    ops: AtomicU64,
    errors: AtomicU64,
}

/// Runs `fulcrum bench` against the chosen target.
///
/// # Errors
///
/// If an address cannot be reached or the keyspace cannot be used before
/// the run, or if no operation succeeded.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.target {
        TargetKind::Resp => run_with::<RespTarget>(args).await,
        #[cfg(feature = "etcd")]
        TargetKind::Etcd => run_with::<EtcdTarget>(args).await,
        #[cfg(not(feature = "etcd"))]
        TargetKind::Etcd => anyhow::bail!(
            "this fulcrum was built without the etcd target; build it with \
             `cargo build --release --features etcd` (needs protoc: Debian's protobuf-compiler)"
        ),
    }
}

async fn run_with<T: Target>(args: BenchArgs) -> anyhow::Result<()> {
    let endpoints: Vec<Endpoint> = args
        .addr
        .iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|addr| Endpoint {
            addr: addr.to_string(),
            keyspace: args.keyspace.clone(),
        })
        .collect();
    if endpoints.is_empty() {
        bail!("--addr names no address");
    }
    // 53 bits, so that the seed survives JSON readers that use doubles.
    let seed = args.seed.unwrap_or_else(|| rand::random::<u64>() >> 11);
    let info = RunInfo {
        target: T::NAME,
        addrs: endpoints.iter().map(|e| e.addr.clone()).collect(),
        keyspace: args.keyspace.clone(),
        clients: args.clients,
        pipeline: args.pipeline,
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        keys: args.keys,
        value_size: args.value_size,
        read_ratio: args.read_ratio,
        seed,
    };
    for endpoint in &endpoints {
        T::prepare(endpoint, args.create_keyspace.as_deref()).await?;
    }
    if !args.json {
        println!("{}", header(&info, args.duration, args.warmup));
    }

    let targets = connect_all::<T>(&endpoints, args.clients).await?;
    let plan = Arc::new(Plan {
        keys: args.keys,
        read_ratio: args.read_ratio,
        pipeline: args.pipeline,
        value: workload::value_of_size(args.value_size),
        seed,
    });
    let start = Instant::now();
    let warmup_end = start + args.warmup;
    let clock = Clock {
        start,
        warmup_end,
        end: warmup_end + args.duration,
    };
    let live = Arc::new(Live::default());
    let tasks: Vec<_> = targets
        .into_iter()
        .enumerate()
        .map(|(i, target)| {
            let endpoint = endpoints[i % endpoints.len()].clone();
            tokio::spawn(client_loop(
                i,
                target,
                endpoint,
                Arc::clone(&plan),
                clock,
                Arc::clone(&live),
            ))
        })
        .collect();

    let show_progress = !args.json && std::io::stdout().is_terminal();
    show_progress_until_done(show_progress, &clock, &live).await;

    let mut merged = Recorder::new()?;
    for (i, task) in tasks.into_iter().enumerate() {
        let rec = task
            .await
            .with_context(|| format!("client {i} panicked"))?
            .with_context(|| format!("client {i}"))?;
        merged.merge(&rec)?;
    }
    let summary = Summary::new(info, &merged, args.duration)?;
    if args.json {
        println!("{}", summary.to_json()?);
    } else {
        print!("{}", summary.to_text());
    }
    if summary.ops == 0 {
        bail!("no operation succeeded in the measured window");
    }
    Ok(())
}

/// The line printed before the run.
fn header(info: &RunInfo, duration: Duration, warmup: Duration) -> String {
    let keyspace = match &info.keyspace {
        Some(k) => format!(" keyspace {k},"),
        None => String::new(),
    };
    format!(
        "fulcrum bench: {} {},{keyspace} {} clients, pipeline {}, {duration:?} after {warmup:?} warm-up, \
         {} keys, {}-byte values, {:.0}% reads, seed {}",
        info.target,
        info.addrs.join(","),
        info.clients,
        info.pipeline,
        info.keys,
        info.value_size,
        info.read_ratio * 100.0,
        info.seed
    )
}

/// Opens one connection per client, spread over the endpoints, all at
/// once.
async fn connect_all<T: Target>(endpoints: &[Endpoint], clients: usize) -> anyhow::Result<Vec<T>> {
    let pending: Vec<_> = (0..clients)
        .map(|i| {
            let endpoint = endpoints[i % endpoints.len()].clone();
            tokio::spawn(async move { T::connect(&endpoint).await })
        })
        .collect();
    let mut targets = Vec::with_capacity(clients);
    for (i, p) in pending.into_iter().enumerate() {
        let target = p
            .await
            .with_context(|| format!("client {i}: connecting panicked"))?
            .with_context(|| format!("client {i}: cannot connect"))?;
        targets.push(target);
    }
    Ok(targets)
}

/// One client: batches of operations until the clock's end.
async fn client_loop<T: Target>(
    client: usize,
    mut target: T,
    endpoint: Endpoint,
    plan: Arc<Plan>,
    clock: Clock,
    live: Arc<Live>,
) -> anyhow::Result<Recorder> {
    let mut rec = Recorder::new()?;
    let mut rng = workload::client_rng(plan.seed, client);
    let mut keys: Vec<Vec<u8>> = vec![Vec::with_capacity(16); plan.pipeline];
    let mut reads = vec![false; plan.pipeline];
    let mut outcomes = Vec::with_capacity(plan.pipeline);
    while Instant::now() < clock.end {
        for (key, read) in keys.iter_mut().zip(reads.iter_mut()) {
            workload::key_name(workload::pick_key(&mut rng, plan.keys), key);
            *read = workload::pick_read(&mut rng, plan.read_ratio);
        }
        let ops: Vec<Op<'_>> = keys
            .iter()
            .zip(&reads)
            .map(|(key, &read)| {
                if read {
                    Op::Get(key)
                } else {
                    Op::Set(key, &plan.value)
                }
            })
            .collect();
        outcomes.clear();
        let started = Instant::now();
        let result = target.batch(&ops, &mut outcomes).await;
        let finished = Instant::now();
        let latency = finished.duration_since(started);
        let measured = clock.measures(finished);
        match result {
            Ok(()) if measured => {
                let (mut ok, mut failed) = (0, 0);
                for (op, outcome) in ops.iter().zip(outcomes.drain(..)) {
                    match (op, outcome) {
                        (Op::Get(_), Outcome::Done) => rec.read(latency, true),
                        (Op::Get(_), Outcome::Miss) => rec.read(latency, false),
                        (Op::Set(..), Outcome::Done | Outcome::Miss) => rec.write(latency),
                        (_, Outcome::Failed { code, message }) => {
                            rec.errors(&code, 1, || message);
                            failed += 1;
                            continue;
                        }
                    }
                    ok += 1;
                }
                live.ops.fetch_add(ok, Ordering::Relaxed);
                live.errors.fetch_add(failed, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(e) => {
                if measured {
                    let n = ops.len() as u64;
                    rec.errors(&format!("client:{}", e.kind), n, || e.message.clone());
                    live.errors.fetch_add(n, Ordering::Relaxed);
                }
                match reconnect::<T>(&endpoint, &clock, &mut rec, &live).await {
                    Some(fresh) => target = fresh,
                    None => break,
                }
            }
        }
    }
    Ok(rec)
}

/// Replaces a failed connection, retrying until the clock's end (`None`).
/// Failed attempts in the measured window count as `client:connect`
/// errors.
async fn reconnect<T: Target>(
    endpoint: &Endpoint,
    clock: &Clock,
    rec: &mut Recorder,
    live: &Live,
) -> Option<T> {
    loop {
        tokio::time::sleep(RECONNECT_PAUSE).await;
        if Instant::now() >= clock.end {
            return None;
        }
        match T::connect(endpoint).await {
            Ok(target) => return Some(target),
            Err(e) => {
                if clock.measures(Instant::now()) {
                    rec.errors("client:connect", 1, || e.message.clone());
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Shows the progress bar (if `show`) until the clock's end; otherwise
/// just waits.
async fn show_progress_until_done(show: bool, clock: &Clock, live: &Live) {
    if !show {
        tokio::time::sleep_until(clock.end.into()).await;
        return;
    }
    let total = clock.end.duration_since(clock.start);
    let bar = ProgressBar::new(u64::try_from(total.as_millis()).unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    loop {
        let now = Instant::now();
        if now >= clock.end {
            break;
        }
        let elapsed = now.duration_since(clock.start);
        bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        if now < clock.warmup_end {
            bar.set_message(format!("warming up ({:.1}s)", elapsed.as_secs_f64()));
        } else {
            let window = now.duration_since(clock.warmup_end);
            let ops = live.ops.load(Ordering::Relaxed);
            bar.set_message(format!(
                "{:.1}s: {ops} ops, {:.0} ops/s, {} errors",
                window.as_secs_f64(),
                summary::rate(ops, window),
                live.errors.load(Ordering::Relaxed)
            ));
        }
        bar.tick();
        tokio::time::sleep(PROGRESS_TICK.min(clock.end.duration_since(now))).await;
    }
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.bench)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        // FULCRUM_ADDR may be set in the environment; the others have no env.
        assert!(!a.addr.is_empty());
        assert_eq!(a.clients, 50);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.warmup, Duration::from_secs(1));
        assert_eq!(a.keys, 100_000);
        assert_eq!(a.value_size, 100);
        assert_eq!(a.read_ratio, 0.5);
        assert_eq!(a.pipeline, 1);
        assert_eq!(a.target, TargetKind::Resp);
        assert!(!a.json);
        assert_eq!(a.seed, None);
    }

    #[test]
    fn parses_flags() {
        let a = parse(&[
            "--addr",
            "127.0.0.1:1,127.0.0.1:2",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--read-ratio",
            "0.95",
            "--keyspace",
            "ks",
            "--create-keyspace",
            "strong",
            "--pipeline",
            "16",
            "--json",
            "--seed",
            "9",
        ])
        .unwrap();
        assert_eq!(a.target, TargetKind::Resp);
        assert_eq!(a.addr, vec!["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(a.warmup, Duration::ZERO);
        assert_eq!(a.read_ratio, 0.95);
        assert_eq!(a.create_keyspace.as_deref(), Some("strong"));
        assert_eq!(a.pipeline, 16);
        assert_eq!(a.seed, Some(9));
    }

    #[test]
    fn parses_the_etcd_target() {
        let a = parse(&[
            "--target",
            "etcd",
            "--addr",
            "127.0.0.1:2379,127.0.0.1:22379",
        ])
        .unwrap();
        assert_eq!(a.target, TargetKind::Etcd);
        assert_eq!(a.addr, vec!["127.0.0.1:2379", "127.0.0.1:22379"]);
    }

    #[test]
    fn refuses_bad_flags() {
        for bad in [
            &["--read-ratio", "1.5"][..],
            &["--read-ratio", "-0.1"],
            &["--clients", "0"],
            &["--pipeline", "0"],
            &["--keys", "0"],
            &["--duration", "0s"],
            &["--duration", "10"],
            &["--create-keyspace", "strong"],
            &["--keyspace", "k", "--create-keyspace", "quantum"],
            &["--target", "zookeeper"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn measures_only_the_window() {
        let start = Instant::now();
        let clock = Clock {
            start,
            warmup_end: start + Duration::from_secs(1),
            end: start + Duration::from_secs(3),
        };
        assert!(!clock.measures(start));
        assert!(clock.measures(start + Duration::from_secs(1)));
        assert!(clock.measures(start + Duration::from_secs(2)));
        assert!(!clock.measures(start + Duration::from_secs(3)));
    }

    #[test]
    fn header_names_the_setup() {
        let info = RunInfo {
            target: "resp",
            addrs: vec!["a:1".into(), "b:2".into()],
            keyspace: Some("ks".into()),
            clients: 50,
            pipeline: 1,
            duration_s: 10.0,
            warmup_s: 1.0,
            keys: 100,
            value_size: 100,
            read_ratio: 0.95,
            seed: 7,
        };
        let h = header(&info, Duration::from_secs(10), Duration::from_secs(1));
        assert!(h.contains("resp a:1,b:2, keyspace ks, 50 clients"), "{h}");
        assert!(h.contains("95% reads, seed 7"), "{h}");
    }
}
