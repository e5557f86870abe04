//! Prometheus metrics: requests, errors and latency per command,
//! connections, group commit, storage sizes.
//!
//! Command metrics are recorded on the hot path through pre-registered
//! families; storage sizes are read at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    pub connections: Gauge,
    pub connections_total: Counter,
    pub expired_keys: Counter,
    pub read_repairs: Counter,
    pub tombstones_purged: Counter,
    pub aae_keys_repaired: Counter,
    pub streamed_records: Counter,
    pub handoff_dropped: Counter,
    pub hints_stored: Counter,
    pub hints_delivered: Counter,
    pub hints_pending: Gauge,
    pub fsyncs: Gauge,
    pub durable_waits: Gauge,
    keyspace_keys: Family<Labels, Gauge>,
    keyspace_disk_bytes: Family<Labels, Gauge>,
    /// Commands served (all kinds), for INFO.
    pub commands_processed: AtomicU64,
    /// Per-command counter and histogram, resolved once so the hot path
    /// does not build label sets.
    per_command: foldhash::HashMap<&'static str, (Counter, Histogram)>,
}

fn latency_histogram() -> Histogram {
    // 10 µs .. ~40 s in factor-2 steps.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 22))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fulcrum");
        let requests = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let latency: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let connections = Gauge::default();
        let connections_total = Counter::default();
        let expired_keys = Counter::default();
        let read_repairs = Counter::default();
        let tombstones_purged = Counter::default();
        let aae_keys_repaired = Counter::default();
        let streamed_records = Counter::default();
        let handoff_dropped = Counter::default();
        let hints_stored = Counter::default();
        let hints_delivered = Counter::default();
        let hints_pending = Gauge::default();
        let fsyncs = Gauge::default();
        let durable_waits = Gauge::default();
        let keyspace_keys = Family::<Labels, Gauge>::default();
        let keyspace_disk_bytes = Family::<Labels, Gauge>::default();
        registry.register("requests", "Commands served, by command", requests.clone());
        registry.register(
            "request_errors",
            "Commands answered with an error, by command and error word",
            errors.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Command latency inside the server, by command",
            latency.clone(),
        );
        registry.register(
            "connections",
            "Open client connections",
            connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "Client connections accepted since start",
            connections_total.clone(),
        );
        registry.register(
            "expired_keys",
            "Keys deleted by the TTL sweeper",
            expired_keys.clone(),
        );
        registry.register(
            "read_repairs",
            "Stale replicas updated by read repair",
            read_repairs.clone(),
        );
        registry.register(
            "hints_stored",
            "Hints stored for replicas that were down",
            hints_stored.clone(),
        );
        registry.register(
            "hints_delivered",
            "Hints delivered to their replica",
            hints_delivered.clone(),
        );
        registry.register(
            "hints_pending",
            "Hints waiting for delivery",
            hints_pending.clone(),
        );
        registry.register(
            "aae_keys_repaired",
            "Keys sent or fetched by Merkle anti-entropy",
            aae_keys_repaired.clone(),
        );
        registry.register(
            "streamed_records",
            "Records moved by partition streaming (join, leave, remove)",
            streamed_records.clone(),
        );
        registry.register(
            "handoff_dropped_records",
            "Records dropped after their partition moved to other replicas that hold them",
            handoff_dropped.clone(),
        );
        registry.register(
            "tombstones_purged",
            "Tombstones removed after every replica agreed on them",
            tombstones_purged.clone(),
        );
        registry.register("fsyncs", "Fsyncs done by group commit", fsyncs.clone());
        registry.register(
            "durable_waits",
            "Write batches that waited for durability",
            durable_waits.clone(),
        );
        registry.register(
            "keyspace_keys",
            "Approximate stored keys per keyspace (includes tombstones)",
            keyspace_keys.clone(),
        );
        registry.register(
            "keyspace_disk_bytes",
            "Bytes on disk per keyspace",
            keyspace_disk_bytes.clone(),
        );
        Metrics {
            registry,
            requests,
            errors,
            latency,
            connections,
            connections_total,
            expired_keys,
            read_repairs,
            tombstones_purged,
            aae_keys_repaired,
            streamed_records,
            handoff_dropped,
            hints_stored,
            hints_delivered,
            hints_pending,
            fsyncs,
            durable_waits,
            keyspace_keys,
            keyspace_disk_bytes,
            commands_processed: AtomicU64::new(0),
            per_command: foldhash::HashMap::default(),
        }
    }

    /// Pre-registers the metrics of these commands (the command table).
    pub fn with_commands(mut self, names: impl IntoIterator<Item = &'static str>) -> Self {
        for name in names {
            let labels = vec![("command", name.to_string())];
            let c = self.requests.get_or_create(&labels).clone();
            let h = self.latency.get_or_create(&labels).clone();
            self.per_command.insert(name, (c, h));
        }
        self
    }

    /// Records one served command.
    pub fn observe(&self, command: &str, seconds: f64, error_word: Option<&str>) {
        match self.per_command.get(command) {
            Some((c, h)) => {
                c.inc();
                h.observe(seconds);
            }
            None => {
                let labels = vec![("command", command.to_string())];
                self.requests.get_or_create(&labels).inc();
                self.latency.get_or_create(&labels).observe(seconds);
            }
        }
        if let Some(word) = error_word {
            let labels = vec![
                ("command", command.to_string()),
                ("error", word.to_string()),
            ];
            self.errors.get_or_create(&labels).inc();
        }
        self.commands_processed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_keyspace_size(&self, keyspace: &str, keys: u64, disk_bytes: u64) {
        let labels = vec![("keyspace", keyspace.to_string())];
        self.keyspace_keys.get_or_create(&labels).set(keys as i64);
        self.keyspace_disk_bytes
            .get_or_create(&labels)
            .set(disk_bytes as i64);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
