//! The history model: building, pairing, validation, JSON, display.

// Helpers outside #[test] fns build fixtures that are known to be well formed.
#![allow(clippy::unwrap_used)]

use fulcrum_check::{Event, EventKind, History, HistoryError, Op, Outcome};

fn sample() -> History {
    History::builder()
        .ok(1, "x", Op::Write(1), 0, 10)
        .version(100)
        .ok(2, "x", Op::Read(Some(1)), 5, 15)
        .ok(2, "x", Op::Read(None), 16, 17)
        .fail(
            3,
            "x",
            Op::Cas {
                expected: Some(7),
                new: 2,
            },
            1,
            2,
        )
        .ok(
            3,
            "x",
            Op::Cas {
                expected: None,
                new: 3,
            },
            3,
            4,
        )
        .info(4, "x", Op::Write(9), 12)
        .info_until(5, "y", Op::Write(8), 12, 40)
        .ok(6, "c", Op::Add(-3), 0, 1)
        .ok(6, "c", Op::ReadCounter(-3), 2, 3)
        .ok(7, "s", Op::AddElement(4), 0, 1)
        .ok(7, "s", Op::ReadSet(vec![4, 5]), 2, 3)
        .build()
        .unwrap()
}

#[test]
fn json_round_trip() {
    let h = sample();
    let json = h.to_json().unwrap();
    assert!(json.starts_with(r#"{"format":1,"ops":["#), "{json}");
    assert_eq!(History::from_json(&json).unwrap(), h);
    assert_eq!(History::from_json(&h.to_json_pretty().unwrap()).unwrap(), h);
    // Through serde directly too, e.g. embedded in a larger document.
    let value = serde_json::to_value(&h).unwrap();
    let back: History = serde_json::from_value(value).unwrap();
    assert_eq!(back, h);
}

#[test]
fn json_is_validated() {
    let bad = r#"{"format":1,"ops":[{"id":0,"client":1,"key":"x","op":{"write":1},"invoke":10,"complete":5,"outcome":"ok"}]}"#;
    assert!(matches!(
        History::from_json(bad),
        Err(HistoryError::CompletionBeforeInvocation {
            id: 0,
            invoke: 10,
            complete: 5
        })
    ));
    let missing = r#"{"format":1,"ops":[{"id":0,"client":1,"key":"x","op":{"read":null},"invoke":10,"outcome":"ok"}]}"#;
    assert!(matches!(
        History::from_json(missing),
        Err(HistoryError::MissingCompletion { id: 0, .. })
    ));
    let future = r#"{"format":2,"ops":[]}"#;
    assert!(matches!(
        History::from_json(future),
        Err(HistoryError::UnsupportedFormat(2))
    ));
    assert!(matches!(
        History::from_json("{"),
        Err(HistoryError::Json(_))
    ));
    assert!(serde_json::from_str::<History>(bad).is_err());
}

#[test]
fn builder_rejects_completion_before_invocation() {
    let err = History::builder()
        .ok(1, "x", Op::Write(1), 10, 5)
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "operation 0 completes at 5, before its invocation at 10"
    );
}

#[test]
fn live_recording() {
    let mut h = History::new();
    let w = h.invoke(1, "x", Op::Write(1), 0);
    let r = h.invoke(2, "x", Op::Read(None), 1);
    let lost = h.invoke(3, "x", Op::Write(2), 2);
    h.complete(w, 5, Outcome::Ok).unwrap();
    h.complete_with(r, 6, Outcome::Ok, Op::Read(Some(1)), Some(100))
        .unwrap();
    assert_eq!(h.ops()[1].op, Op::Read(Some(1)));
    assert_eq!(h.ops()[1].version, Some(100));
    // Never completed: stays Info without a completion time.
    assert_eq!(h.ops()[lost as usize].outcome, Outcome::Info);
    assert!(matches!(
        h.complete(w, 7, Outcome::Ok),
        Err(HistoryError::AlreadyCompleted { id: 0 })
    ));
    assert!(matches!(
        h.complete(99, 7, Outcome::Ok),
        Err(HistoryError::UnknownOperation { id: 99 })
    ));
    assert!(matches!(
        h.complete(lost, 1, Outcome::Ok),
        Err(HistoryError::CompletionBeforeInvocation { .. })
    ));
    let err = h
        .complete_with(lost, 9, Outcome::Ok, Op::Write(3), None)
        .unwrap_err();
    assert!(matches!(
        err,
        HistoryError::CompletionMismatch { id: 2, .. }
    ));
    assert_eq!(
        err.to_string(),
        "operation 2 was invoked as write 2 but completed as write 3"
    );
}

fn event(kind: EventKind, client: u64, op: Op, time: u64) -> Event {
    Event {
        kind,
        client,
        key: "x".into(),
        op,
        time,
        version: None,
    }
}

#[test]
fn events_pair_per_client() {
    let h = History::from_events([
        event(EventKind::Invoke, 1, Op::Write(1), 0),
        event(EventKind::Invoke, 2, Op::Read(None), 1),
        event(EventKind::Ok, 2, Op::Read(Some(1)), 3),
        event(EventKind::Info, 1, Op::Write(1), 4),
        event(EventKind::Invoke, 1, Op::Write(2), 5),
        event(EventKind::Invoke, 3, Op::Write(3), 5),
        event(EventKind::Fail, 3, Op::Write(3), 6),
    ])
    .unwrap();
    let outcomes: Vec<(Outcome, Option<u64>)> =
        h.ops().iter().map(|op| (op.outcome, op.complete)).collect();
    assert_eq!(
        outcomes,
        vec![
            (Outcome::Info, Some(4)),
            (Outcome::Ok, Some(3)),
            (Outcome::Info, None),
            (Outcome::Fail, Some(6)),
        ]
    );
    assert_eq!(h.ops()[1].op, Op::Read(Some(1)));
}

#[test]
fn events_reject_bad_pairing() {
    let busy = History::from_events([
        event(EventKind::Invoke, 1, Op::Write(1), 0),
        event(EventKind::Invoke, 1, Op::Write(2), 1),
    ]);
    assert!(matches!(
        busy,
        Err(HistoryError::ClientBusy {
            client: 1,
            pending: 0,
            time: 1
        })
    ));
    let unpaired = History::from_events([event(EventKind::Ok, 1, Op::Write(1), 0)]);
    assert!(matches!(
        unpaired,
        Err(HistoryError::UnpairedCompletion { client: 1, time: 0 })
    ));
    let early = History::from_events([
        event(EventKind::Invoke, 1, Op::Write(1), 5),
        event(EventKind::Ok, 1, Op::Write(1), 4),
    ]);
    assert!(matches!(
        early,
        Err(HistoryError::CompletionBeforeInvocation { .. })
    ));
    let mut other_key = event(EventKind::Ok, 1, Op::Write(1), 6);
    other_key.key = "y".into();
    let wrong_key = History::from_events([event(EventKind::Invoke, 1, Op::Write(1), 5), other_key]);
    assert!(matches!(wrong_key, Err(HistoryError::KeyMismatch { .. })));
}

#[test]
fn display_is_a_table_sorted_by_invocation() {
    let text = sample().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("id  client  key  invoke  complete"),
        "{text}"
    );
    assert_eq!(lines.len(), 12, "{text}");
    assert!(text.contains("write 1 @v100"), "{text}");
    assert!(text.contains("cas 7 -> 2"), "{text}");
    assert!(text.contains("cas nil -> 3"), "{text}");
    assert!(text.contains("read-set -> {4, 5}"), "{text}");
    assert!(text.contains("add -3"), "{text}");
    assert!(text.contains("(40)"), "{text}");
}
