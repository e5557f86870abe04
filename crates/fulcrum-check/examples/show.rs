use fulcrum_check::*;
fn main() {
    let h = History::builder()
        .ok(1, "c", Op::Add(5), 0, 10)
        .ok(2, "c", Op::ReadCounter(0), 11, 12)
        .ok(1, "s", Op::AddElement(1), 0, 1)
        .ok(2, "s", Op::AddElement(2), 0, 1)
        .ok(9, "s", Op::ReadSet(vec![1]), 10, 11)
        .ok(1, "r", Op::Write(1), 0, 1)
        .ok(2, "r", Op::Write(2), 2, 3)
        .ok(9, "r", Op::Read(Some(1)), 30, 31)
        .ok(2, "r", Op::Read(Some(1)), 40, 41)
        .build()
        .unwrap();
    println!("{}", check_counter(&h, CounterMode::Linearizable));
    println!("{}", check_lost_writes(&h));
    println!("{}", check_sessions(&h, VersionOrder::ValueOrder));
    println!("{}", check_sessions(&h, VersionOrder::Recorded));
    println!("{}", check_linearizable(&h, &Default::default()));
}
