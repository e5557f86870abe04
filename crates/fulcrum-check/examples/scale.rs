#[path = "../tests/common/mod.rs"]
mod common;
use fulcrum_check::*;
use std::time::Instant;
fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (n, clients, seed, noinfo) = (args[0] as usize, args[1] as u8, args[2], args[3]);
    let mut rng = common::Rng(seed);
    let mut specs = rng.specs(n, clients);
    if noinfo == 1 {
        for s in &mut specs {
            s.info = 0;
        }
    }
    if noinfo == 2 {
        for s in &mut specs {
            if s.kind >= 7 {
                s.kind = 4;
            }
        }
    }
    let h = common::simulate(&specs, "x", false);
    for steps in [1_000_000u64, 10_000_000, 100_000_000] {
        let t = Instant::now();
        let r = check_linearizable(
            &h,
            &LinearizabilityOptions {
                max_steps_per_key: steps,
                ..Default::default()
            },
        );
        println!("steps {steps}: {} {:?}", r.verdict, t.elapsed());
        if r.verdict != Verdict::Unknown {
            break;
        }
    }
}
