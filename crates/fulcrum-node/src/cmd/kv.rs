//! How commands read and write keys, whatever the keyspace's mode:
//!
//! - strong keyspaces: on the node that owns the key's partition, local
//!   and atomic under the key's lock (`Db::update`); commands reach that
//!   node by forwarding (see `cmd::forward`). Raft groups replace the
//!   local apply later.
//! - eventual keyspaces: through the coordinator (`coord.rs`) at the
//!   connection's read and write levels. A read-modify-write reads at R,
//!   decides, and writes at W with the causal context it read, so it
//!   supersedes exactly what it saw.

use bytes::Bytes;
use fulcrum_core::keyspace::Mode;
use fulcrum_core::level::Level;
use fulcrum_core::record::{Record, Version};

use super::{CmdError, Ctx};
use crate::catalog::Keyspace;
use crate::coord::{context_of, CoordError};
use crate::db::{wall_ms, Change, Current};
use crate::replica::{NewVersion, WriteContext};

impl From<CoordError> for CmdError {
    fn from(e: CoordError) -> Self {
        CmdError::Raw(e.to_string())
    }
}

impl Ctx<'_> {
    pub fn read_level(&self, ks: &Keyspace) -> Level {
        self.conn.read_level.unwrap_or(ks.spec.read)
    }

    pub fn write_level(&self, ks: &Keyspace) -> Level {
        self.conn.write_level.unwrap_or(ks.spec.write)
    }

    /// The merged record of `key` (eventual keyspaces) at the read level.
    ///
    /// # Errors
    /// UNAVAILABLE / TIMEOUT from the coordinator.
    pub async fn read_record(
        &self,
        ks: &std::sync::Arc<Keyspace>,
        key: &Bytes,
    ) -> Result<Option<Record>, CmdError> {
        match ks.spec.mode {
            Mode::Strong => Ok(self.db.read_record(ks, key)?),
            Mode::Eventual => Ok(self.cluster.read(ks, key, self.read_level(ks)).await?),
        }
    }

    /// The visible version of `key` now.
    ///
    /// # Errors
    /// As [`Ctx::read_record`].
    pub async fn read_visible(
        &self,
        ks: &std::sync::Arc<Keyspace>,
        key: &Bytes,
    ) -> Result<Option<Version>, CmdError> {
        match ks.spec.mode {
            Mode::Strong => Ok(self.db.get(ks, key, wall_ms())?),
            Mode::Eventual => Ok(self
                .read_record(ks, key)
                .await?
                .and_then(|r| r.visible(wall_ms()).cloned())),
        }
    }

    /// Reads `key`, lets `decide` choose a change, applies it.
    ///
    /// # Errors
    /// Storage or coordinator errors.
    pub async fn update<T>(
        &mut self,
        ks: &std::sync::Arc<Keyspace>,
        key: &Bytes,
        decide: impl FnOnce(&Current) -> (Change, T),
    ) -> Result<T, CmdError> {
        match ks.spec.mode {
            Mode::Strong => {
                let (wrote, out) = self.db.update(ks, key, decide)?;
                self.conn.wrote |= wrote;
                Ok(out)
            }
            Mode::Eventual => {
                let merged = self.read_record(ks, key).await?;
                let now_ms = wall_ms();
                let current = Current {
                    version: merged.as_ref().and_then(|r| r.visible(now_ms).cloned()),
                    now_ms,
                };
                let (change, out) = decide(&current);
                let context = WriteContext::Given(context_of(ks.spec.conflict, merged.as_ref()));
                self.apply(ks, key, context, change).await?;
                Ok(out)
            }
        }
    }

    /// Writes without reading first (plain SET, MSET).
    ///
    /// # Errors
    /// Storage or coordinator errors.
    pub async fn put(
        &mut self,
        ks: &std::sync::Arc<Keyspace>,
        key: &Bytes,
        change: Change,
    ) -> Result<(), CmdError> {
        match ks.spec.mode {
            Mode::Strong => {
                let (wrote, ()) = self.db.update(ks, key, |_| (change, ()))?;
                self.conn.wrote |= wrote;
                Ok(())
            }
            Mode::Eventual => self.apply(ks, key, WriteContext::Local, change).await,
        }
    }

    /// Sends one change of an eventual key through the coordinator.
    ///
    /// # Errors
    /// UNAVAILABLE / TIMEOUT.
    pub async fn apply(
        &mut self,
        ks: &std::sync::Arc<Keyspace>,
        key: &Bytes,
        context: WriteContext,
        change: Change,
    ) -> Result<(), CmdError> {
        let new = match change {
            Change::Keep => return Ok(()),
            Change::Put {
                value,
                expires_at_ms,
            } => NewVersion {
                value,
                tombstone: false,
                expires_at_ms,
            },
            Change::Delete => NewVersion {
                value: Bytes::new(),
                tombstone: true,
                expires_at_ms: None,
            },
        };
        let level = self.write_level(ks);
        let local = self.cluster.write(ks, key, context, new, level).await?;
        self.conn.wrote |= local;
        Ok(())
    }
}
