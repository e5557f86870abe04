//! The command table: name, arity (Redis convention: positive = exact
//! argument count including the name, negative = at least), flags, key
//! positions, and which handler runs it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Ping,
    Echo,
    Hello,
    Auth,
    Quit,
    Select,
    Client,
    Command,
    Info,
    Config,
    DbSize,
    Get,
    Set,
    GetSet,
    GetDel,
    MGet,
    MSet,
    Del,
    Exists,
    Expire,
    PExpire,
    Ttl,
    PTtl,
    Persist,
    Type,
    Scan,
    Incr,
    Decr,
    IncrBy,
    DecrBy,
    GetRev,
    Keyspace,
    Use,
    Consistency,
    VGet,
    VSet,
    VDel,
    Fault,
    Repair,
    Cluster,
}

#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: &'static [&'static str],
    /// First key argument (1-based as in Redis), 0 if none.
    pub first_key: i32,
    /// Last key argument; -1 means the last argument.
    pub last_key: i32,
    pub step: i32,
    pub handler: Handler,
}

impl Spec {
    /// Whether argument `i` (0 = the command name) is a key.
    pub fn is_key_position(&self, i: usize, argc: usize) -> bool {
        if self.first_key == 0 || i == 0 {
            return false;
        }
        let i = i as i32;
        let last = if self.last_key < 0 {
            argc as i32 + self.last_key
        } else {
            self.last_key
        };
        i >= self.first_key && i <= last && (i - self.first_key) % self.step == 0
    }
}

const W: &[&str] = &["write"];
const WD: &[&str] = &["write", "denyoom"];
const R: &[&str] = &["readonly", "fast"];
const F: &[&str] = &["fast"];
const A: &[&str] = &["admin"];

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $h:ident) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            handler: Handler::$h,
        }
    };
}

/// Every command this node serves, hot ones first.
pub static COMMANDS: &[Spec] = &[
    spec!("GET", 2, R, 1, 1, 1, Get),
    spec!("SET", -3, WD, 1, 1, 1, Set),
    spec!("PING", -1, F, 0, 0, 0, Ping),
    spec!("MGET", -2, R, 1, -1, 1, MGet),
    spec!("MSET", -3, WD, 1, -1, 2, MSet),
    spec!("DEL", -2, W, 1, -1, 1, Del),
    spec!("EXISTS", -2, R, 1, -1, 1, Exists),
    spec!("INCR", 2, WD, 1, 1, 1, Incr),
    spec!("DECR", 2, WD, 1, 1, 1, Decr),
    spec!("INCRBY", 3, WD, 1, 1, 1, IncrBy),
    spec!("DECRBY", 3, WD, 1, 1, 1, DecrBy),
    spec!("GETSET", 3, WD, 1, 1, 1, GetSet),
    spec!("GETDEL", 2, W, 1, 1, 1, GetDel),
    spec!("EXPIRE", -3, W, 1, 1, 1, Expire),
    spec!("PEXPIRE", -3, W, 1, 1, 1, PExpire),
    spec!("TTL", 2, R, 1, 1, 1, Ttl),
    spec!("PTTL", 2, R, 1, 1, 1, PTtl),
    spec!("PERSIST", 2, W, 1, 1, 1, Persist),
    spec!("TYPE", 2, R, 1, 1, 1, Type),
    spec!("SCAN", -2, &["readonly"], 0, 0, 0, Scan),
    spec!("DBSIZE", 1, R, 0, 0, 0, DbSize),
    spec!("GETREV", 2, R, 1, 1, 1, GetRev),
    spec!("ECHO", 2, F, 0, 0, 0, Echo),
    spec!("HELLO", -1, F, 0, 0, 0, Hello),
    spec!("AUTH", -2, F, 0, 0, 0, Auth),
    spec!("QUIT", -1, F, 0, 0, 0, Quit),
    spec!("SELECT", 2, F, 0, 0, 0, Select),
    spec!("CLIENT", -2, &[], 0, 0, 0, Client),
    spec!("COMMAND", -1, &[], 0, 0, 0, Command),
    spec!("INFO", -1, &[], 0, 0, 0, Info),
    spec!("CONFIG", -2, A, 0, 0, 0, Config),
    spec!("KEYSPACE", -2, A, 0, 0, 0, Keyspace),
    spec!("USE", 2, F, 0, 0, 0, Use),
    spec!("CONSISTENCY", -1, F, 0, 0, 0, Consistency),
    spec!("VGET", 2, R, 1, 1, 1, VGet),
    spec!("VSET", -3, WD, 1, 1, 1, VSet),
    spec!("VDEL", -2, W, 1, 1, 1, VDel),
    spec!("FAULT", -2, A, 0, 0, 0, Fault),
    spec!("REPAIR", -1, A, 0, 0, 0, Repair),
    spec!("CLUSTER", -2, A, 0, 0, 0, Cluster),
];

/// Finds a command by name, ignoring ASCII case.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|s| s.name.len() == name.len() && s.name.as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"get").unwrap().name, "GET");
        assert_eq!(lookup(b"KeySpace").unwrap().name, "KEYSPACE");
        assert!(lookup(b"FLUSHALL").is_none());
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        let mset = lookup(b"MSET").unwrap();
        let flags: Vec<bool> = (0..5).map(|i| mset.is_key_position(i, 5)).collect();
        assert_eq!(flags, vec![false, true, false, true, false]);
        let del = lookup(b"DEL").unwrap();
        assert!(del.is_key_position(3, 4));
        let ping = lookup(b"PING").unwrap();
        assert!(!ping.is_key_position(1, 2));
    }
}
