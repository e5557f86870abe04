//! Configuration of the real binary: flags, `FULCRUM_*` environment
//! variables and the `--config` TOML file; errors that name the culprit;
//! precedence flag > environment > file; the example file; `--help`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// How long a server that must refuse to start may run.
const REFUSE_WITHIN: Duration = Duration::from_secs(20);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `server` with a temporary data dir and free ports, so that a server that
/// wrongly starts cannot touch the defaults (./fulcrum-data, port 7379).
fn server_args(dir: &Path) -> Vec<String> {
    let [resp, http, peer] = free_ports::<3>();
    vec![
        "server".into(),
        "--data-dir".into(),
        dir.join("data").display().to_string(),
        "--resp-addr".into(),
        loopback(resp).to_string(),
        "--http-addr".into(),
        loopback(http).to_string(),
        "--peer-addr".into(),
        loopback(peer).to_string(),
    ]
}

/// Runs `server` (safe defaults, then `extra`) and expects it to refuse to
/// start: a non-zero exit with `stderr` returned.
fn refused(extra: &[&str], envs: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    // Safe defaults, minus the flags `extra` gives itself (clap refuses a
    // flag given twice).
    let safe = server_args(dir.path());
    let mut args = vec![safe[0].clone()];
    for pair in safe[1..].chunks(2) {
        if !extra.contains(&pair[0].as_str()) {
            args.extend(pair.iter().cloned());
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, envs, REFUSE_WITHIN);
    assert!(
        !out.success(),
        "`fulcrum {}` should fail\nstdout:\n{}\nstderr:\n{}",
        refs.join(" "),
        out.stdout,
        out.stderr
    );
    out.stderr
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config file");
    path
}

async fn status_node_id(node: &Node) -> String {
    let s: Value =
        serde_json::from_str(&node.http_get("/status").await.body).expect("/status is JSON");
    s["node_id"].as_str().expect("node_id").to_string()
}

#[test]
fn unknown_flag_is_named() {
    let err = refused(&["--bogus-flag"], &[]);
    assert!(err.contains("--bogus-flag"), "{err}");
    let err = refused(&["--max-clients"], &[]);
    assert!(
        err.contains("--max-clients"),
        "a flag without its value: {err}"
    );
}

#[test]
fn bad_fsync_value_is_named() {
    let err = refused(&["--fsync", "sometimes"], &[]);
    assert!(err.contains("sometimes"), "{err}");
    assert!(err.contains("--fsync"), "{err}");
    let err = refused(&["--fsync", "interval:0"], &[]);
    assert!(err.contains("interval:0"), "{err}");
    // The same value from the environment and from the file.
    let err = refused(&[], &[("FULCRUM_FSYNC", "sometimes")]);
    assert!(err.contains("sometimes"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "f.toml", "fsync = \"sometimes\"\n");
    let err = refused(&["--config", file.to_str().unwrap()], &[]);
    assert!(err.contains("sometimes"), "{err}");
}

#[test]
fn unknown_key_in_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "node.toml", "node-id = \"n1\"\nbogus-key = 1\n");
    let err = refused(&["--config", file.to_str().unwrap()], &[]);
    assert!(err.contains("bogus-key"), "{err}");
    assert!(err.contains("node.toml"), "the file is named too: {err}");
    // A missing file is named.
    let missing = dir.path().join("missing.toml");
    let err = refused(&["--config", missing.to_str().unwrap()], &[]);
    assert!(err.contains("missing.toml"), "{err}");
    // So is a file that is not TOML.
    let broken = write_file(dir.path(), "broken.toml", "node-id = \n[[[\n");
    let err = refused(&["--config", broken.to_str().unwrap()], &[]);
    assert!(err.contains("broken.toml"), "{err}");
}

#[test]
fn invalid_node_id_is_named_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "id.toml", "node-id = \"bad id\"\n");
    let err = refused(&["--config", file.to_str().unwrap()], &[]);
    assert!(err.contains("node-id"), "{err}");
    let err = refused(&["--node-id", "bad id"], &[]);
    assert!(err.contains("node-id"), "{err}");
    let err = refused(&[], &[("FULCRUM_NODE_ID", "bad/id")]);
    assert!(err.contains("node-id"), "{err}");
    let err = refused(&["--node-id", &"x".repeat(65)], &[]);
    assert!(err.contains("node-id"), "{err}");
}

#[test]
fn invalid_values_are_named() {
    let err = refused(&["--max-clients", "0"], &[]);
    assert!(err.contains("max-clients"), "{err}");
    let err = refused(&["--max-value-bytes", "0"], &[]);
    assert!(err.contains("max-value-bytes"), "{err}");
    let err = refused(&["--max-key-bytes", "70000"], &[]);
    assert!(err.contains("max-key-bytes"), "{err}");
    let err = refused(&["--sweep-interval-ms", "0"], &[]);
    assert!(err.contains("sweep-interval-ms"), "{err}");
    let err = refused(&["--max-array-len", "lots"], &[]);
    assert!(err.contains("lots"), "{err}");
    let err = refused(&["--threads", "5000"], &[]);
    assert!(err.contains("threads"), "{err}");
    let err = refused(&[], &[("FULCRUM_THREADS", "many")]);
    assert!(err.contains("many"), "{err}");
    let err = refused(&["--resp-addr", "not-an-address"], &[]);
    assert!(err.contains("not-an-address"), "{err}");
    let [p] = free_ports::<1>();
    let same = loopback(p).to_string();
    let err = refused(&["--resp-addr", &same, "--http-addr", &same], &[]);
    assert!(err.contains("resp-addr"), "{err}");
}

#[test]
fn unusable_address_or_data_dir_fails_the_start_with_a_message() {
    // A RESP port that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = refused(&["--resp-addr", &addr], &[]);
    assert!(err.contains("resp-addr"), "{err}");
    assert!(err.contains(&addr), "{err}");
    drop(taken);
    // A data directory that is a regular file.
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "not-a-dir", "x");
    let err = refused(&["--data-dir", file.to_str().unwrap()], &[]);
    assert!(err.contains("not-a-dir"), "{err}");
}

#[tokio::test]
async fn node_id_from_env() {
    let node = Node::builder()
        .env("FULCRUM_NODE_ID", "from-env")
        .start()
        .await;
    assert_eq!(status_node_id(&node).await, "from-env");
    let mut c = node.client().await;
    let info = text(&cmd(&mut c, &["INFO", "fulcrum"]).await);
    assert_eq!(info_field(&info, "node_id").as_deref(), Some("from-env"));
}

#[tokio::test]
async fn flag_wins_over_env() {
    let node = Node::builder()
        .env("FULCRUM_NODE_ID", "from-env")
        .args(["--node-id", "from-flag"])
        .start()
        .await;
    assert_eq!(status_node_id(&node).await, "from-flag");
}

#[tokio::test]
async fn env_wins_over_file_and_file_wins_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "node.toml",
        "node-id = \"from-file\"\ndc = \"file-dc\"\nrack = \"file-rack\"\n",
    );
    let file = file.to_str().unwrap().to_string();
    let node = Node::builder()
        .env("FULCRUM_NODE_ID", "from-env")
        .env("FULCRUM_RACK", "env-rack")
        .args(["--config", file.as_str()])
        .start()
        .await;
    let s: Value = serde_json::from_str(&node.http_get("/status").await.body).unwrap();
    assert_eq!(s["node_id"], "from-env", "{s}");
    assert_eq!(s["members"][0]["dc"], "file-dc", "file beats default: {s}");
    assert_eq!(s["members"][0]["rack"], "env-rack", "env beats file: {s}");
    drop(node);

    // All three sources at once; the config file itself from the env.
    let node = Node::builder()
        .env("FULCRUM_CONFIG", file.as_str())
        .env("FULCRUM_NODE_ID", "from-env")
        .args(["--node-id", "from-flag"])
        .start()
        .await;
    let s: Value = serde_json::from_str(&node.http_get("/status").await.body).unwrap();
    assert_eq!(s["node_id"], "from-flag", "{s}");
    assert_eq!(s["members"][0]["dc"], "file-dc", "{s}");

    let node = Node::builder()
        .args(["--config", file.as_str()])
        .start()
        .await;
    assert_eq!(status_node_id(&node).await, "from-file");
}

#[tokio::test]
async fn limits_from_env_and_file_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "limits.toml",
        "max-value-bytes = 2048\nmax-key-bytes = 64\n",
    );
    let node = Node::builder()
        .args(["--config", file.to_str().unwrap()])
        .env("FULCRUM_MAX_KEY_BYTES", "32")
        .start()
        .await;
    let mut c = node.client().await;
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", &"k".repeat(33), "v"]).await),
        "TOOLARGE key of 33 bytes exceeds the limit of 32 bytes"
    );
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", "k", &"v".repeat(2049)]).await),
        "TOOLARGE argument of 2049 bytes exceeds the limit of 2048 bytes"
    );
    assert_eq!(
        cmd(&mut c, &["SET", &"k".repeat(32), &"v".repeat(2048)]).await,
        ok()
    );
}

#[tokio::test]
async fn threads_size_the_runtime_that_serves_clients() {
    let node = Node::builder().args(["--threads", "1"]).start().await;
    let s: Value = serde_json::from_str(&node.http_get("/status").await.body).unwrap();
    assert_eq!(s["threads"], 1);
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["SET", "k", "v"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "k"]).await, bulk("v"));

    let node = Node::builder().env("FULCRUM_THREADS", "3").start().await;
    let s: Value = serde_json::from_str(&node.http_get("/status").await.body).unwrap();
    assert_eq!(s["threads"], 3);

    // The default: one per core but one.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let node = Node::builder().start().await;
    let s: Value = serde_json::from_str(&node.http_get("/status").await.body).unwrap();
    assert_eq!(s["threads"], cores.saturating_sub(1).max(1));
}

#[tokio::test]
async fn example_config_file_starts_a_node() {
    let example = repo_root().join("fulcrum.example.toml");
    assert!(example.exists(), "{} exists", example.display());
    // The harness overrides data-dir and the three addresses by flags.
    let node = Node::builder()
        .args(["--config", example.to_str().unwrap()])
        .start()
        .await;
    let s: Value = serde_json::from_str(&node.http_get("/status").await.body).unwrap();
    assert_eq!(s["node_id"], "n1");
    assert_eq!(s["fsync"], "always");
    assert_eq!(s["members"][0]["resp_addr"], node.resp.to_string());
    assert_eq!(s["members"][0]["dc"], "dc1");
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["SET", "k", "v"]).await, ok());
    assert_eq!(cmd(&mut c, &["GET", "k"]).await, bulk("v"));
    assert!(
        node.data_dir.join("storage").exists(),
        "data went to --data-dir, not the file's ./fulcrum-data"
    );
}

/// Keys of the example file, including commented-out ones (`# key = ...`),
/// with their values as text (quotes removed).
fn example_keys() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo_root().join("fulcrum.example.toml"))
        .expect("read fulcrum.example.toml");
    let mut keys = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches('#').trim();
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
            continue;
        }
        keys.insert(k.to_string(), v.trim().trim_matches('"').to_string());
    }
    keys
}

fn server_help() -> String {
    let out = run(&["server", "--help"], &[], REFUSE_WITHIN);
    assert!(out.success(), "{out:?}");
    out.stdout
}

#[test]
fn server_help_mentions_every_flag_and_env_var() {
    let help = server_help();
    let mut flags: Vec<String> = [
        "config",
        "node-id",
        "data-dir",
        "resp-addr",
        "http-addr",
        "peer-addr",
        "seeds",
        "dc",
        "rack",
        "fsync",
        "max-key-bytes",
        "max-value-bytes",
        "max-array-len",
        "cache-mb",
        "sweep-interval-ms",
        "max-clients",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every key of the example file is a flag too.
    flags.extend(example_keys().into_keys());
    for flag in flags {
        assert!(
            help.contains(&format!("--{flag} ")),
            "--{flag} missing:\n{help}"
        );
        let env = format!("FULCRUM_{}", flag.to_ascii_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "{env} missing:\n{help}");
    }
    assert!(
        help.contains("always") && help.contains("interval:"),
        "{help}"
    );
}

/// `[default: X]` of every flag in `--help`.
fn help_defaults(help: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("--") {
            current = rest.split([' ', '<']).next().map(str::to_string);
        }
        if let (Some(flag), Some(i)) = (&current, t.find("[default: ")) {
            let v = &t[i + "[default: ".len()..];
            if let Some(end) = v.find(']') {
                out.insert(flag.clone(), v[..end].to_string());
            }
        }
    }
    out
}

/// The defaults `--help` documents must be the defaults the example file
/// (which says it shows them) sets and the node uses.
#[test]
fn help_defaults_agree_with_the_example_file() {
    let defaults = help_defaults(&server_help());
    let example = example_keys();
    assert!(defaults.len() >= 10, "parsed defaults: {defaults:?}");
    let mut mismatches = Vec::new();
    for (flag, documented) in &defaults {
        if let Some(in_file) = example.get(flag) {
            if in_file != documented {
                mismatches.push(format!(
                    "--{flag}: --help says [default: {documented}], fulcrum.example.toml says {in_file}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// What a default node really enforces for keys: the example file's
/// 64512 bytes (64 KiB less 1 KiB of headroom).
#[tokio::test]
async fn default_key_limit_is_the_example_files() {
    let limit: usize = example_keys()["max-key-bytes"].parse().unwrap();
    let node = Node::start().await;
    let mut c = node.client().await;
    assert_eq!(cmd(&mut c, &["SET", &"k".repeat(limit), "v"]).await, ok());
    assert_eq!(
        err_text(&cmd(&mut c, &["SET", &"k".repeat(limit + 1), "v"]).await),
        format!(
            "TOOLARGE key of {} bytes exceeds the limit of {limit} bytes",
            limit + 1
        )
    );
}
