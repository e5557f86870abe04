//! Answers to peer requests (the receiving side of `net/`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fulcrum_core::record::Record;

use super::Cluster;
use crate::catalog::CatalogError;
use crate::net::server::error;
use crate::net::{MemberState, PeerRequest, PeerResponse};
use crate::schema::SchemaEntry;

impl Cluster {
    /// Answers one request from a peer.
    pub async fn handle_peer(self: &Arc<Self>, request: PeerRequest) -> PeerResponse {
        match request {
            PeerRequest::Ping => PeerResponse::Pong {
                node_id: self.me.node_id.clone(),
            },
            PeerRequest::Join { member } => {
                let changed = self.merge_records(vec![member]);
                let (epoch, members) = self.snapshot();
                // With gossip the new member spreads by itself.
                if changed && !self.gossips() {
                    let failed = self
                        .broadcast(PeerRequest::Members {
                            epoch,
                            members: members.clone(),
                        })
                        .await;
                    for (node, e) in failed {
                        tracing::warn!(%node, error = %e, "member list not delivered");
                    }
                }
                PeerResponse::Joined {
                    epoch,
                    members,
                    keyspaces: self
                        .db
                        .catalog
                        .list()
                        .iter()
                        .map(|k| k.spec.clone())
                        .collect(),
                }
            }
            PeerRequest::Members { epoch: _, members } => {
                self.merge_records(members);
                PeerResponse::Done
            }
            PeerRequest::CreateKeyspace { spec, version } => {
                let entry = SchemaEntry {
                    version,
                    spec: Some(spec.clone()),
                };
                match self.db.catalog.create(spec.clone()) {
                    Err(CatalogError::Exists(_)) => {
                        // Known already: maybe a republication of moved
                        // group voters (`strong_move.rs`).
                        self.apply_schema(&spec.name, entry).await;
                        PeerResponse::Done
                    }
                    Ok(_) => {
                        self.schema
                            .offer(self.db.storage.as_ref(), &spec.name, entry);
                        self.announce().await;
                        // Opening Raft groups takes a while (storage, fsyncs);
                        // the schema is durable now, the groups follow.
                        let this = self.clone();
                        tokio::spawn(async move { this.open_strong_groups(&spec).await });
                        PeerResponse::Done
                    }
                    Err(e) => error(e),
                }
            }
            PeerRequest::DropKeyspace { name, version } => {
                // Staged writes of the keyspace go in first (or fail): none may land
                // in a table of the same name created later.
                let _ = self.db.commit_staged();
                match self.db.catalog.drop_keyspace(&name) {
                    Ok(()) | Err(CatalogError::Missing(_)) => {
                        let entry = SchemaEntry {
                            version,
                            spec: None,
                        };
                        self.schema.offer(self.db.storage.as_ref(), &name, entry);
                        self.announce().await;
                        self.close_strong_groups(&name).await;
                        PeerResponse::Done
                    }
                    Err(e) => error(e),
                }
            }
            PeerRequest::JoinGroup {
                keyspace,
                partition,
            } => match self.join_moved_group(&keyspace, partition).await {
                Ok(()) => PeerResponse::Done,
                Err(e) => error(e),
            },
            PeerRequest::Raft {
                keyspace,
                partition,
                rpc,
            } => PeerResponse::Raft(
                self.groups
                    .handle_rpc(&fulcrum_raft::GroupId::new(keyspace, partition), &rpc)
                    .await,
            ),
            PeerRequest::Read { keyspace, key } => {
                if self.my_state() == MemberState::Left {
                    // Writes on a previous ring count a node that left as
                    // holding them (`Placement::departed`): its answer must
                    // not count toward any read.
                    return error("this node left the cluster; it answers no reads");
                }
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                match self.db.read_record(&ks, &key) {
                    Ok(rec) => {
                        if let Some(r) = &rec {
                            self.db.observe(r.max_timestamp());
                        }
                        PeerResponse::Record(rec.map(|r| r.encode()))
                    }
                    Err(e) => error(e),
                }
            }
            PeerRequest::Put {
                keyspace,
                key,
                record,
            } => {
                let delay = self.faults.delay_puts_ms.load(Ordering::Relaxed);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if self.faults.drop_puts.load(Ordering::Relaxed) {
                    return error("replica write dropped by fault injection");
                }
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                let record = match Record::decode(&record) {
                    Ok(r) => r,
                    Err(e) => return error(format!("undecodable record: {e}")),
                };
                match self.db.replica_merge(&ks, &key, &record) {
                    Ok(false) => PeerResponse::Done,
                    Ok(true) => match self.db.durable().await {
                        Ok(()) => PeerResponse::Done,
                        Err(e) => error(e),
                    },
                    Err(e) => error(e),
                }
            }
            req @ (PeerRequest::AaeRoots { .. }
            | PeerRequest::AaeSegments { .. }
            | PeerRequest::AaeKeys { .. }) => self.handle_aae(req),
            PeerRequest::Purge {
                keyspace,
                key,
                record,
            } => {
                let (Some(ks), Ok(record)) =
                    (self.db.catalog.get(&keyspace), Record::decode(&record))
                else {
                    return error("unknown keyspace or undecodable record");
                };
                match self.db.purge_if_equal(&ks, &key, &record) {
                    Ok(_) => PeerResponse::Done,
                    Err(e) => error(e),
                }
            }
            PeerRequest::Hint {
                target,
                keyspace,
                key,
                record,
            } => {
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                let record = match Record::decode(&record) {
                    Ok(r) => r,
                    Err(e) => return error(format!("undecodable record: {e}")),
                };
                match self.db.store_hint(&target, &ks, &key, &record) {
                    Ok(()) => match self.db.durable().await {
                        Ok(()) => PeerResponse::Done,
                        Err(e) => error(e),
                    },
                    Err(e) => error(e),
                }
            }
            PeerRequest::Write {
                keyspace,
                key,
                context,
                version,
                level,
            } => {
                crate::coord::handle_forwarded_write(self, keyspace, key, context, version, level)
                    .await
            }
            PeerRequest::StreamRecords {
                keyspace,
                partition,
                after,
                limit,
            } => {
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                match self
                    .db
                    .partition_records(&ks, partition, after.as_deref(), limit as usize)
                {
                    Ok((records, next)) => PeerResponse::Records { records, next },
                    Err(e) => error(e),
                }
            }
            PeerRequest::PutBatch { keyspace, records } => {
                let Some(ks) = self.db.catalog.get(&keyspace) else {
                    return error(format!("keyspace '{keyspace}' does not exist"));
                };
                for (key, record) in records {
                    let record = match Record::decode(&record) {
                        Ok(r) => r,
                        Err(e) => return error(format!("undecodable record: {e}")),
                    };
                    if let Err(e) = self.db.replica_merge(&ks, &key, &record) {
                        return error(e);
                    }
                }
                match self.db.durable().await {
                    Ok(()) => PeerResponse::Done,
                    Err(e) => error(e),
                }
            }
            PeerRequest::Command {
                keyspace,
                args,
                read_level,
                write_level,
            } => {
                crate::coord::handle_forwarded_command(
                    self,
                    keyspace,
                    args,
                    read_level,
                    write_level,
                )
                .await
            }
        }
    }
}
