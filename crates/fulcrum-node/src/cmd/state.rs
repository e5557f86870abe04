//! Per-connection state: protocol version, keyspace, level overrides,
//! client name, open SCAN cursors.

use std::collections::VecDeque;

use bytes::Bytes;
use fulcrum_core::keyspace::DEFAULT_KEYSPACE;
use fulcrum_core::level::Level;
use fulcrum_proto::Protocol;

/// How many SCAN cursors one connection keeps open; older ones expire.
const MAX_CURSORS: usize = 64;

pub struct ConnState {
    /// CLIENT ID: unique per node for its lifetime.
    pub id: u64,
    /// CLIENT SETNAME.
    pub name: Option<Bytes>,
    /// RESP2 until `HELLO 3`.
    pub protocol: Protocol,
    /// USE: the keyspace commands act on.
    pub keyspace: String,
    /// CONSISTENCY overrides of the keyspace's default levels.
    pub read_level: Option<Level>,
    pub write_level: Option<Level>,
    /// Set by QUIT: close after sending the reply.
    pub quit: bool,
    /// Set by any command that wrote: the connection awaits durability
    /// before sending this batch of replies.
    pub wrote: bool,
    /// This request came from another node: do not forward it again.
    pub forwarded: bool,
    /// SCAN cursors: the number handed out → the last key returned.
    cursors: VecDeque<(u64, Bytes)>,
    next_cursor: u64,
}

impl ConnState {
    pub fn new(id: u64) -> Self {
        ConnState {
            id,
            name: None,
            protocol: Protocol::Resp2,
            keyspace: DEFAULT_KEYSPACE.to_string(),
            read_level: None,
            write_level: None,
            quit: false,
            wrote: false,
            forwarded: false,
            cursors: VecDeque::new(),
            next_cursor: 1,
        }
    }

    /// Remembers where a scan stopped and returns the cursor to hand out.
    pub fn save_cursor(&mut self, last_key: Bytes) -> u64 {
        let id = self.next_cursor;
        self.next_cursor += 1;
        if self.cursors.len() == MAX_CURSORS {
            self.cursors.pop_front();
        }
        self.cursors.push_back((id, last_key));
        id
    }

    /// The position a cursor stands for; `None` if unknown or expired.
    pub fn cursor(&self, id: u64) -> Option<Bytes> {
        self.cursors
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, k)| k.clone())
    }
}
