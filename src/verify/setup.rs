//! Preparing the cluster for a run: the keyspace under test, created on
//! every node, and (strong keyspaces) serving before the clock starts.

use std::time::{Duration, Instant};

use anyhow::bail;
use fulcrum_client::{Client, Frame};

use super::backend::ClusterUnderTest;
use super::workload::{connect, Plan};
use super::{Console, WorkloadKind};

/// How long one KEYSPACE CREATE may take (a strong keyspace opens its Raft
/// groups on every node before answering).
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates the run's keyspace through node 0 and waits until every node
/// knows it. A schema change that reached only some members (for example a
/// node that was slow to open its Raft groups) is given time to land, and
/// sent again through a node that still lacks the keyspace.
///
/// # Errors
/// The creation was refused, or did not reach every node in time.
pub async fn create_keyspace(
    cluster: &impl ClusterUnderTest,
    plan: &Plan,
    console: &Console,
) -> anyhow::Result<()> {
    let name = plan.keyspace.as_str();
    let mut args = vec!["KEYSPACE", "CREATE", name, "MODE"];
    if plan.strong {
        args.push("strong");
    } else {
        args.extend([
            "eventual", "REPLICAS", "3", "READ", "QUORUM", "WRITE", "QUORUM",
        ]);
    }
    let started = Instant::now();
    let mut via = 0usize;
    let mut last_sent = Instant::now();
    send_create(cluster, via, &args, console).await?;
    let deadline = started + Duration::from_secs(60);
    loop {
        let mut missing = None;
        for i in cluster.members() {
            let known = cluster
                .status(i)
                .await
                .is_ok_and(|s| s.keyspaces.iter().any(|k| k.name == name));
            if !known {
                missing = Some(i);
                break;
            }
        }
        let Some(node) = missing else {
            return Ok(());
        };
        if Instant::now() > deadline {
            bail!(
                "node {} does not know keyspace {name} after {:?}",
                cluster.nodes()[node].id,
                started.elapsed()
            );
        }
        if last_sent.elapsed() > Duration::from_secs(10) && node != via {
            via = node;
            last_sent = Instant::now();
            send_create(cluster, via, &args, console).await?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One KEYSPACE CREATE through node `via`; a partial or repeated creation
/// is not an error (the caller waits for every node to know the keyspace).
async fn send_create(
    cluster: &impl ClusterUnderTest,
    via: usize,
    args: &[&str],
    console: &Console,
) -> anyhow::Result<()> {
    match cluster.admin_within(via, args, CREATE_TIMEOUT).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = format!("{e:#}");
            let maybe_created = ["already exists", "UNAVAILABLE schema change", "timed out"];
            if maybe_created.iter().any(|m| text.contains(m)) {
                console.line(format!("note: {text}; waiting for every node to know it"));
                Ok(())
            } else {
                Err(e.context("cannot create the keyspace"))
            }
        }
    }
}

/// Strong keyspaces: waits until a read of each of the workload's first
/// keys succeeds through every member (Raft groups have leaders; a node
/// held back to join later is not asked), so the
/// measured run does not start with an election. Not recorded: reads have
/// no effect.
///
/// # Errors
/// Some key stayed unreadable for 60 s.
pub async fn wait_until_serving(plan: &Plan, console: &Console) -> anyhow::Result<()> {
    if !plan.strong {
        return Ok(());
    }
    let keys: Vec<String> = (0..plan.keys)
        .map(|k| match plan.workload {
            WorkloadKind::Register => format!("reg:{k}"),
            WorkloadKind::Counter => format!("ctr:{k}"),
            WorkloadKind::Set => format!("set:{k}:0"),
        })
        .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    for addr in plan.targets.active().into_iter().map(|i| plan.nodes[i]) {
        let mut conn: Option<Client> = None;
        for key in &keys {
            loop {
                if conn.is_none() {
                    conn = connect(addr, &plan.keyspace, None).await.ok();
                }
                let ok = match conn.as_mut() {
                    Some(c) => {
                        matches!(c.cmd(&["GET", key]).await, Ok(Frame::Null | Frame::Bulk(_)))
                    }
                    None => false,
                };
                if ok {
                    break;
                }
                conn = None;
                if Instant::now() > deadline {
                    bail!("{key} is not readable through {addr} after 60 s");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if started.elapsed() > Duration::from_secs(1) {
        console.line(format!(
            "keyspace serving after {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}
