//! The N/R/W table: what each choice of write and read quorum buys on a key
//! with N replicas.
//!
//! A write waits for W of the N replicas, a read for R of them. If
//! `W + R > N`, any R replicas and any W replicas share at least one
//! replica (pigeonhole: `W + R` picks from N nodes must repeat one), so every
//! read reaches a replica holding the latest acknowledged write: reads are
//! strong. Otherwise a read may hit only replicas the write missed. Reads
//! stay available with up to `N - R` replicas down, writes with `N - W`.
//!
//! The guarantee assumes strict quorums among the N home replicas. A sloppy
//! quorum (hinted handoff to fallback nodes) can acknowledge a write outside
//! them, so overlap holds again only once the hints are delivered.
//!
//! Pure functions of N; `render` is what an `EXPLAIN`-style command prints.

use std::fmt::Write as _;

use crate::level::Level;

/// One `(W, R)` choice for `N` replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub n: u32,
    pub w: u32,
    pub r: u32,
    /// `W + R > N`: every read quorum intersects every write quorum, so a
    /// read sees the latest acknowledged write.
    pub overlap: bool,
    /// `N - R`: replicas that may be down with reads still succeeding.
    pub read_failures_survived: u32,
    /// `N - W`: replicas that may be down with writes still succeeding.
    pub write_failures_survived: u32,
    /// What the setting is good for, in a few words.
    pub note: &'static str,
}

/// The row for `w` and `r` of `n` replicas. `w` and `r` should be in
/// `1..=n`; larger values count as `n`.
pub fn row(n: u32, w: u32, r: u32) -> Row {
    let (w, r) = (w.min(n), r.min(n));
    let overlap = w + r > n;
    let quorum = n / 2 + 1;
    let note = if n == 1 {
        "one copy: strong, no failure tolerated"
    } else if overlap && r == 1 {
        "strong; fastest strong reads, one replica down blocks writes"
    } else if overlap && w == 1 {
        "strong; fastest strong writes, one replica down blocks reads"
    } else if overlap && w == n && r == n {
        "strong; no replica may be down"
    } else if overlap && w == quorum && r == quorum {
        "strong; quorum both ways, a minority may be down"
    } else if overlap {
        "strong"
    } else if w == 1 && r == 1 {
        "eventual; fastest, reads may be stale"
    } else {
        "eventual; a read may miss the latest write"
    };
    Row {
        n,
        w,
        r,
        overlap,
        read_failures_survived: n - r,
        write_failures_survived: n - w,
        note,
    }
}

/// Every `(W, R)` in `1..=n × 1..=n`, by W then R. Empty for `n = 0`.
pub fn table(n: u32) -> Vec<Row> {
    (1..=n)
        .flat_map(|w| (1..=n).map(move |r| row(n, w, r)))
        .collect()
}

/// The fastest strong read setting: `R = 1`, which needs `W = N`.
pub fn fastest_read(n: u32) -> Option<Row> {
    (n > 0).then(|| row(n, n, 1))
}

/// The fastest strong write setting: `W = 1`, which needs `R = N`.
pub fn fastest_write(n: u32) -> Option<Row> {
    (n > 0).then(|| row(n, 1, n))
}

/// The consistency level name for waiting on `count` of `n` replicas:
/// `ONE`, `QUORUM`, `ALL`, `TWO`, `THREE` or the number.
pub fn level_name(count: u32, n: u32) -> String {
    [
        Level::One,
        Level::Quorum,
        Level::All,
        Level::Two,
        Level::Three,
    ]
    .into_iter()
    .find(|l| l.required(n) == count)
    .unwrap_or(Level::Count(count))
    .to_string()
}

/// The table as aligned text, with a legend and the classic settings.
pub fn render(n: u32) -> String {
    let mut out = String::new();
    if n == 0 {
        out.push_str("N must be at least 1.\n");
        return out;
    }
    // Writing to a String cannot fail; the results are ignored below.
    let _ = writeln!(out, "Quorums for N = {n} replicas");
    let _ = writeln!(
        out,
        "  W = replicas that must acknowledge a write, R = replicas that must answer a read"
    );
    out.push('\n');
    let rows: Vec<(Row, String)> = table(n)
        .into_iter()
        .map(|row| {
            let levels = format!("W={} R={}", level_name(row.w, n), level_name(row.r, n));
            (row, levels)
        })
        .collect();
    let lw = rows.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "{:>3} {:>3} {:>5}  {:<6}  {:<13}  {:<14}  {:<lw$}  note",
        "W", "R", "W+R", "strong", "reads survive", "writes survive", "levels"
    );
    for (row, levels) in rows {
        let _ = writeln!(
            out,
            "{:>3} {:>3} {:>5}  {:<6}  {:<13}  {:<14}  {:<lw$}  {}",
            row.w,
            row.r,
            row.w + row.r,
            if row.overlap { "yes" } else { "no" },
            format!("{} down", row.read_failures_survived),
            format!("{} down", row.write_failures_survived),
            levels,
            row.note,
        );
    }
    out.push('\n');
    let _ = writeln!(out, "Legend:");
    let _ = writeln!(
        out,
        "  strong = W+R > N: any R replicas and any W replicas share one, so every read"
    );
    let _ = writeln!(
        out,
        "           reaches a replica holding the latest acknowledged write. Needs strict"
    );
    let _ = writeln!(
        out,
        "           quorums: writes a sloppy quorum hands to fallback nodes overlap only"
    );
    let _ = writeln!(out, "           once their hints are delivered.");
    let _ = writeln!(
        out,
        "  reads survive = N-R and writes survive = N-W replicas may be down."
    );
    out.push('\n');
    let quorum = n / 2 + 1;
    let _ = writeln!(
        out,
        "Fastest reads:  R=1 (ONE); strong only with W={n} (ALL)."
    );
    let _ = writeln!(
        out,
        "Fastest writes: W=1 (ONE); strong only with R={n} (ALL)."
    );
    let _ = writeln!(out, "Classic settings:");
    let classic = [
        (
            format!("R=1, W={n}"),
            "(R=ONE, W=ALL)",
            "fast strong reads; every replica must take each write".to_string(),
        ),
        (
            format!("W=1, R={n}"),
            "(W=ONE, R=ALL)",
            "fast strong writes; every replica must answer each read".to_string(),
        ),
        (
            format!("W=R={quorum}"),
            "(QUORUM both ways)",
            format!(
                "strong, and {} of {n} replicas may be down (N=3: W=R=2)",
                n - quorum
            ),
        ),
    ];
    for (setting, levels, what) in classic {
        let _ = writeln!(out, "  {setting:<10} {levels:<19} {what}.");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_for_three_replicas() {
        let t = table(3);
        assert_eq!(t.len(), 9);
        let at = |w, r| *t.iter().find(|x| x.w == w && x.r == r).unwrap();
        let strong: Vec<(u32, u32)> = t.iter().filter(|x| x.overlap).map(|x| (x.w, x.r)).collect();
        assert_eq!(strong, [(1, 3), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]);
        let q = at(2, 2);
        assert_eq!(
            (q.read_failures_survived, q.write_failures_survived),
            (1, 1)
        );
        assert!(q.note.contains("quorum"));
        let fast = at(1, 1);
        assert!(!fast.overlap);
        assert_eq!(
            (fast.read_failures_survived, fast.write_failures_survived),
            (2, 2)
        );
        assert_eq!(at(3, 1).read_failures_survived, 2);
        assert_eq!(at(3, 1).write_failures_survived, 0);
        assert!(!at(2, 1).overlap && !at(1, 2).overlap);
        assert_eq!(fastest_read(3), Some(at(3, 1)));
        assert_eq!(fastest_write(3), Some(at(1, 3)));
        assert!(t.iter().all(|x| x.n == 3));
    }

    #[test]
    fn degenerate_sizes() {
        assert!(table(0).is_empty());
        assert_eq!(fastest_read(0), None);
        let one = table(1);
        assert_eq!(one.len(), 1);
        assert!(one[0].overlap);
        assert_eq!(table(5).len(), 25);
        assert!(render(0).contains("at least 1"));
    }

    #[test]
    fn level_names() {
        assert_eq!(level_name(1, 3), "ONE");
        assert_eq!(level_name(2, 3), "QUORUM");
        assert_eq!(level_name(3, 3), "ALL");
        assert_eq!(level_name(2, 5), "TWO");
        assert_eq!(level_name(4, 5), "4");
    }

    #[test]
    fn render_lists_every_row_and_explains_it() {
        let text = render(3);
        for row in table(3) {
            let found = text.lines().any(|line| {
                let mut cols = line.split_whitespace();
                cols.next() == Some(&row.w.to_string())
                    && cols.next() == Some(&row.r.to_string())
                    && line.contains(row.note)
            });
            assert!(found, "no line for W={} R={}:\n{text}", row.w, row.r);
        }
        assert!(text.contains("W+R > N"));
        assert!(text.contains("Fastest reads:  R=1"));
        assert!(text.contains("Fastest writes: W=1"));
        assert!(text.contains("W=R=2"));
        // Columns line up: every table line has the note at the same offset.
        let offsets: Vec<usize> = table(3)
            .iter()
            .filter_map(|row| {
                text.lines().find_map(|l| {
                    let mut cols = l.split_whitespace();
                    (cols.next() == Some(&row.w.to_string())
                        && cols.next() == Some(&row.r.to_string()))
                    .then(|| l.find(row.note))
                    .flatten()
                })
            })
            .collect();
        assert_eq!(offsets.len(), 9);
        assert!(offsets.windows(2).all(|p| p[0] == p[1]));
    }
}
