//! CONFIG: the node's configuration, read-only.
//!
//! `CONFIG GET pattern [pattern …]` answers every setting whose name
//! matches a glob pattern (case-insensitive), as Redis does: a map under
//! RESP3, a flat name/value array under RESP2. The names are the TOML
//! file's keys (`fsync`, `max-clients`, …), plus Redis's names for the
//! settings that have a Redis counterpart (`appendonly`, `appendfsync`,
//! `save`, `maxclients`, `dir`, `port`, …), which tools such as
//! `redis-benchmark` ask for. Fulcrum reads its configuration once, at
//! start (flags, `FULCRUM_*` environment, TOML file): `CONFIG SET`,
//! `REWRITE` and `RESETSTAT` answer an error that says so.

use bytes::Bytes;
use fulcrum_proto::Frame;
use fulcrum_storage::FsyncPolicy;

use super::args::is;
use super::glob::glob_match;
use super::{CmdError, CmdResult, Ctx};
use crate::config::NodeConfig;

const HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern> [<pattern> ...]",
    "    Return the settings whose names match a glob pattern, with their values.",
    "HELP",
    "    Print this help.",
    "Fulcrum reads its configuration at start (flags, FULCRUM_* environment, TOML file);",
    "SET, REWRITE and RESETSTAT are not supported: restart the node with the new setting.",
];

/// `CONFIG GET pattern [pattern …] | HELP`; SET, REWRITE and RESETSTAT
/// are refused with an error that says why.
pub fn config(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = &a[0];
    if is(sub, "GET") {
        if a.len() < 2 {
            return Err(CmdError::subcommand_arity("CONFIG", sub));
        }
        get(&ctx.cluster.config, &a[1..])
    } else if is(sub, "HELP") {
        Ok(Frame::Array(
            HELP.iter()
                .map(|line| Frame::Simple((*line).into()))
                .collect(),
        ))
    } else if ["SET", "REWRITE", "RESETSTAT"].iter().any(|s| is(sub, s)) {
        Err(CmdError::Msg(format!(
            "CONFIG {} is not supported: Fulcrum reads its configuration at start \
             (flags, FULCRUM_* environment, TOML file); restart the node with the new setting",
            String::from_utf8_lossy(sub).to_ascii_uppercase()
        )))
    } else {
        Err(CmdError::unknown_subcommand(sub, "CONFIG HELP"))
    }
}

/// The settings of `config` matching any of `patterns`, each once.
fn get(config: &NodeConfig, patterns: &[Bytes]) -> CmdResult {
    let patterns: Vec<Vec<u8>> = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
    let pairs = settings(config)?
        .into_iter()
        .filter(|(name, _)| patterns.iter().any(|p| glob_match(p, name.as_bytes())))
        .map(|(name, value)| (Frame::Bulk(name.into()), Frame::Bulk(value.into())))
        .collect();
    Ok(Frame::Map(pairs))
}

/// Every setting by name: the file keys (sorted), then the Redis names.
///
/// # Errors
/// The configuration does not serialize (a data directory whose path is
/// not UTF-8).
pub fn settings(config: &NodeConfig) -> Result<Vec<(String, String)>, CmdError> {
    let fields = match serde_json::to_value(config) {
        Ok(serde_json::Value::Object(fields)) => fields,
        Ok(_) => return Err(CmdError::Msg("cannot show the configuration".into())),
        Err(e) => return Err(CmdError::Msg(format!("cannot show the configuration: {e}"))),
    };
    let mut out: Vec<(String, String)> = fields
        .into_iter()
        .map(|(name, value)| (name, shown(&value)))
        .collect();
    // Redis's `appendfsync` has no interval of our kind: `everysec` is the
    // nearest; `fsync` has the exact policy.
    let appendfsync = match config.fsync {
        FsyncPolicy::Always => "always",
        FsyncPolicy::Interval(_) => "everysec",
        FsyncPolicy::Never => "no",
    };
    let redis = [
        // Every write goes to the storage engine's journal first.
        ("appendonly", "yes".to_string()),
        ("appendfsync", appendfsync.to_string()),
        // No snapshots: the journal and the engine's tables are the data.
        ("save", String::new()),
        ("databases", "1".to_string()),
        ("maxclients", config.max_clients.to_string()),
        ("proto-max-bulk-len", config.max_value_bytes.to_string()),
        ("dir", config.data_dir.display().to_string()),
        ("bind", config.resp_addr.ip().to_string()),
        ("port", config.resp_addr.port().to_string()),
    ];
    out.extend(redis.map(|(name, value)| (name.to_string(), value)));
    Ok(out)
}

/// A setting's value as Redis shows one: text, numbers, `yes`/`no`, lists
/// joined by commas, an empty string for none.
fn shown(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(shown).collect::<Vec<_>>().join(","),
        Value::Object(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(all: &'a [(String, String)], name: &str) -> Option<&'a str> {
        all.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn settings_show_every_file_key_and_the_redis_names() {
        let config = NodeConfig {
            fsync: FsyncPolicy::Interval(std::time::Duration::from_millis(250)),
            seeds: vec!["10.0.0.1:7381".into(), "10.0.0.2:7381".into()],
            max_clients: 77,
            ..NodeConfig::default()
        };
        let all = settings(&config).unwrap();
        assert_eq!(lookup(&all, "fsync"), Some("interval:250"));
        assert_eq!(lookup(&all, "appendfsync"), Some("everysec"));
        assert_eq!(lookup(&all, "appendonly"), Some("yes"));
        assert_eq!(lookup(&all, "save"), Some(""));
        assert_eq!(lookup(&all, "max-clients"), Some("77"));
        assert_eq!(lookup(&all, "maxclients"), Some("77"));
        assert_eq!(lookup(&all, "seeds"), Some("10.0.0.1:7381,10.0.0.2:7381"));
        assert_eq!(lookup(&all, "allow-faults"), Some("no"));
        assert_eq!(lookup(&all, "peer-advertise-addr"), Some(""));
        assert_eq!(lookup(&all, "port"), Some("7379"));
        // Every key a TOML file may hold is shown, and nothing else of ours.
        let file = toml::Value::try_from(&config).unwrap();
        let file_keys = file.as_table().unwrap().keys();
        assert!(file_keys.len() > 20);
        for key in file_keys {
            assert!(lookup(&all, key).is_some(), "{key} missing");
        }
        let names: std::collections::BTreeSet<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), all.len(), "each name once");
    }

    #[test]
    fn get_matches_globs_without_case_and_answers_each_setting_once() {
        let config = NodeConfig::default();
        let pats =
            |ps: &[&str]| -> Vec<Bytes> { ps.iter().map(|p| Bytes::from(p.to_string())).collect() };
        let names = |f: Frame| -> Vec<String> {
            match f {
                Frame::Map(pairs) => pairs
                    .into_iter()
                    .map(|(k, _)| match k {
                        Frame::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                        other => panic!("name {other:?}"),
                    })
                    .collect(),
                other => panic!("reply {other:?}"),
            }
        };
        assert_eq!(names(get(&config, &pats(&["SAVE"])).unwrap()), ["save"]);
        assert_eq!(
            names(get(&config, &pats(&["*fsync*", "fsync"])).unwrap()),
            ["fsync", "appendfsync"]
        );
        assert!(names(get(&config, &pats(&["no-such-setting"])).unwrap()).is_empty());
    }
}
