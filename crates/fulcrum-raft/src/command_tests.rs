use std::collections::BTreeMap;
use std::convert::Infallible;

use super::*;

#[derive(Default)]
struct Map(BTreeMap<Bytes, StoredValue>);

impl KvState for Map {
    type Error = Infallible;
    fn load(&mut self, key: &[u8]) -> Result<Option<StoredValue>, Infallible> {
        Ok(self.0.get(key).cloned())
    }
    fn store(&mut self, key: Bytes, value: Option<StoredValue>) {
        match value {
            Some(v) => self.0.insert(key, v),
            None => self.0.remove(&key),
        };
    }
}

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

fn set(key: &str, value: &str, condition: Condition) -> Command {
    Command::Set {
        key: b(key),
        value: b(value),
        ttl: Ttl::Clear,
        condition,
        get_old: true,
    }
}

fn run(m: &mut Map, index: u64, now: u64, c: Command) -> Response {
    let Ok(r) = execute(m, index, now, c);
    r
}

fn get(m: &Map, key: &str) -> Option<StoredValue> {
    m.0.get(key.as_bytes()).cloned()
}

#[test]
fn set_conditions_and_revisions() {
    let mut m = Map::default();
    assert_eq!(
        run(&mut m, 1, 0, set("k", "a", Condition::Exists)),
        Response::Set {
            applied: false,
            old: None
        }
    );
    assert_eq!(
        run(&mut m, 2, 0, set("k", "a", Condition::Missing)),
        Response::Set {
            applied: true,
            old: None
        }
    );
    assert_eq!(get(&m, "k").unwrap().revision, 2);
    // NX on an existing key fails and keeps the revision.
    assert_eq!(
        run(&mut m, 3, 0, set("k", "b", Condition::Missing)),
        Response::Set {
            applied: false,
            old: Some(b("a"))
        }
    );
    assert_eq!(get(&m, "k").unwrap().revision, 2);
    // IFEQ: only the matching value wins.
    let r = run(&mut m, 4, 0, set("k", "c", Condition::Equals(b("x"))));
    assert!(matches!(r, Response::Set { applied: false, .. }));
    let r = run(&mut m, 5, 0, set("k", "c", Condition::Equals(b("a"))));
    assert!(matches!(r, Response::Set { applied: true, .. }));
    assert_eq!(get(&m, "k").unwrap().value, b("c"));
    assert_eq!(get(&m, "k").unwrap().revision, 5);
    // Compare-and-set on the revision.
    let r = run(&mut m, 6, 0, set("k", "d", Condition::Revision(2)));
    assert!(matches!(r, Response::Set { applied: false, .. }));
    let r = run(&mut m, 7, 0, set("k", "d", Condition::Revision(5)));
    assert!(matches!(r, Response::Set { applied: true, .. }));
    assert_eq!(get(&m, "k").unwrap().revision, 7);
}

#[test]
fn ttl_follows_the_entry_time() {
    let mut m = Map::default();
    let c = Command::Set {
        key: b("k"),
        value: b("v"),
        ttl: Ttl::AfterMs(100),
        condition: Condition::Always,
        get_old: false,
    };
    run(&mut m, 1, 1_000, c);
    assert_eq!(get(&m, "k").unwrap().expires_at_ms, Some(1_100));
    // KEEPTTL keeps it; a plain SET clears it.
    let keep = Command::Set {
        key: b("k"),
        value: b("w"),
        ttl: Ttl::Keep,
        condition: Condition::Always,
        get_old: false,
    };
    run(&mut m, 2, 1_050, keep);
    assert_eq!(get(&m, "k").unwrap().expires_at_ms, Some(1_100));
    // Expired at 1_100: NX succeeds, XX fails, the old value is gone.
    let r = run(&mut m, 3, 1_100, set("k", "x", Condition::Exists));
    assert_eq!(
        r,
        Response::Set {
            applied: false,
            old: None
        }
    );
    assert!(get(&m, "k").is_none(), "touching an expired key removes it");
    // An expiry in the past leaves no key.
    let past = Command::Set {
        key: b("p"),
        value: b("v"),
        ttl: Ttl::AtMs(5),
        condition: Condition::Always,
        get_old: false,
    };
    run(&mut m, 4, 10, past);
    assert!(get(&m, "p").is_none());
}

#[test]
fn incr_semantics() {
    let mut m = Map::default();
    let incr = |d| Command::IncrBy {
        key: b("n"),
        delta: d,
    };
    assert_eq!(run(&mut m, 1, 0, incr(1)), Response::Integer(1));
    assert_eq!(run(&mut m, 2, 0, incr(-5)), Response::Integer(-4));
    assert_eq!(get(&m, "n").unwrap().value, b("-4"));
    assert_eq!(get(&m, "n").unwrap().revision, 2);
    run(
        &mut m,
        3,
        0,
        set("n", &i64::MAX.to_string(), Condition::Always),
    );
    assert_eq!(
        run(&mut m, 4, 0, incr(1)),
        Response::Error(CommandError::Overflow)
    );
    assert_eq!(
        get(&m, "n").unwrap().revision,
        3,
        "a failed INCR changes nothing"
    );
    for bad in [
        "",
        "x",
        "01",
        "-0",
        "+1",
        " 1",
        "1.5",
        "99999999999999999999",
    ] {
        run(&mut m, 5, 0, set("n", bad, Condition::Always));
        assert_eq!(
            run(&mut m, 6, 0, incr(1)),
            Response::Error(CommandError::NotInteger),
            "{bad:?}"
        );
    }
    assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    assert_eq!(parse_i64(b"0"), Some(0));
}

#[test]
fn incr_keeps_the_ttl() {
    let mut m = Map::default();
    let c = Command::Set {
        key: b("n"),
        value: b("1"),
        ttl: Ttl::AtMs(500),
        condition: Condition::Always,
        get_old: false,
    };
    run(&mut m, 1, 0, c);
    run(
        &mut m,
        2,
        10,
        Command::IncrBy {
            key: b("n"),
            delta: 2,
        },
    );
    assert_eq!(get(&m, "n").unwrap().expires_at_ms, Some(500));
    assert_eq!(get(&m, "n").unwrap().value, b("3"));
}

#[test]
fn expire_persist_getset_getdel_mset_del() {
    let mut m = Map::default();
    let exp = |at| Command::Expire { key: b("k"), at };
    assert_eq!(
        run(&mut m, 1, 0, exp(ExpireAt::AfterMs(5))),
        Response::Applied(false)
    );
    run(&mut m, 2, 0, set("k", "v", Condition::Always));
    assert_eq!(
        run(&mut m, 3, 0, exp(ExpireAt::Persist)),
        Response::Applied(false)
    );
    assert_eq!(
        run(&mut m, 4, 100, exp(ExpireAt::AfterMs(50))),
        Response::Applied(true)
    );
    assert_eq!(get(&m, "k").unwrap().expires_at_ms, Some(150));
    assert_eq!(get(&m, "k").unwrap().revision, 4);
    assert_eq!(
        run(&mut m, 5, 100, exp(ExpireAt::Persist)),
        Response::Applied(true)
    );
    assert_eq!(get(&m, "k").unwrap().expires_at_ms, None);
    // An expiry not after now deletes.
    assert_eq!(
        run(&mut m, 6, 100, exp(ExpireAt::AtMs(100))),
        Response::Applied(true)
    );
    assert!(get(&m, "k").is_none());

    let gs = Command::GetSet {
        key: b("g"),
        value: b("1"),
    };
    assert_eq!(run(&mut m, 7, 0, gs.clone()), Response::Value(None));
    assert_eq!(run(&mut m, 8, 0, gs), Response::Value(Some(b("1"))));
    let gd = Command::GetDel { key: b("g") };
    assert_eq!(run(&mut m, 9, 0, gd.clone()), Response::Value(Some(b("1"))));
    assert_eq!(run(&mut m, 10, 0, gd), Response::Value(None));

    let pairs = vec![(b("a"), b("1")), (b("b"), b("2"))];
    assert_eq!(run(&mut m, 11, 0, Command::MSet { pairs }), Response::Ok);
    assert_eq!(get(&m, "b").unwrap().revision, 11);
    let del = Command::Del {
        keys: vec![b("a"), b("b"), b("zzz")],
    };
    assert_eq!(run(&mut m, 12, 0, del), Response::Integer(2));
}

#[test]
fn delete_expired_removes_only_expired_keys() {
    let mut m = Map::default();
    for (i, (k, at)) in [("a", Some(10)), ("b", Some(100)), ("c", None)]
        .iter()
        .enumerate()
    {
        let c = Command::Set {
            key: b(k),
            value: b("v"),
            ttl: at.map_or(Ttl::Clear, Ttl::AtMs),
            condition: Condition::Always,
            get_old: false,
        };
        run(&mut m, i as u64 + 1, 0, c);
    }
    let c = Command::DeleteExpired {
        keys: vec![b("a"), b("b"), b("c"), b("d")],
    };
    assert_eq!(run(&mut m, 9, 50, c), Response::Integer(1));
    assert!(get(&m, "a").is_none());
    assert!(get(&m, "b").is_some() && get(&m, "c").is_some());
}

#[test]
fn oversized_keys_fail_deterministically() {
    let mut m = Map::default();
    let c = Command::GetDel {
        key: Bytes::from(vec![0u8; MAX_KEY_LEN + 1]),
    };
    assert!(matches!(
        c.validate(),
        Err(CommandError::TooLarge {
            what: Oversized::Key,
            ..
        })
    ));
    assert!(matches!(
        run(&mut m, 1, 0, c),
        Response::Error(CommandError::TooLarge { .. })
    ));
}
