//! Delta debugging (Zeller's ddmin) over sets of operations.
//!
//! The shrinker works on indices into a caller's operation list. The caller
//! supplies `fails`, which says whether a candidate subset still violates the
//! property, and `close`, which repairs a candidate so that its failing is
//! still evidence against the *original* history (for linearizability: drop
//! reads whose writers were dropped). The result is 1-minimal up to the check
//! budget: removing any single remaining operation (and its closure) makes
//! the violation disappear.

/// Shrink `items` (which must fail) to a small failing subset. At most
/// `max_checks` calls to `fails` are made.
pub(crate) fn ddmin(
    items: Vec<usize>,
    max_checks: usize,
    mut fails: impl FnMut(&[usize]) -> bool,
    close: impl Fn(Vec<usize>) -> Vec<usize>,
) -> Vec<usize> {
    let mut checks_left = max_checks;
    let mut try_candidate = |candidate: &[usize], checks_left: &mut usize| -> bool {
        if *checks_left == 0 {
            return false;
        }
        *checks_left -= 1;
        fails(candidate)
    };
    let mut current = items;

    // Cheap first cut: the shortest failing prefix (items are in invocation
    // order), by bisection. Failing is monotone in the prefix length because
    // every closed candidate is a sound restriction of any larger one.
    let (mut ok_len, mut failing_len) = (0usize, current.len());
    while failing_len - ok_len > 1 && checks_left > 0 {
        let mid = ok_len + (failing_len - ok_len) / 2;
        let candidate = close(current[..mid].to_vec());
        if try_candidate(&candidate, &mut checks_left) {
            failing_len = mid;
        } else {
            ok_len = mid;
        }
    }
    if failing_len < current.len() {
        current = close(current[..failing_len].to_vec());
    }

    // ddmin proper: try dropping each of `granularity` chunks.
    let mut granularity = 2usize;
    while current.len() >= 2 && checks_left > 0 {
        let chunk = current.len().div_ceil(granularity);
        let mut reduced = false;
        for start in (0..current.len()).step_by(chunk) {
            let candidate: Vec<usize> = current[..start]
                .iter()
                .chain(current[(start + chunk).min(current.len())..].iter())
                .copied()
                .collect();
            let candidate = close(candidate);
            if candidate.len() < current.len() && try_candidate(&candidate, &mut checks_left) {
                current = candidate;
                granularity = granularity.saturating_sub(1).max(2);
                reduced = true;
                break;
            }
        }
        if !reduced {
            if granularity >= current.len() {
                break;
            }
            granularity = (granularity * 2).min(current.len());
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::ddmin;

    #[test]
    fn finds_the_two_culprits() {
        let items: Vec<usize> = (0..100).collect();
        let result = ddmin(items, 10_000, |c| c.contains(&17) && c.contains(&63), |c| c);
        assert_eq!(result, vec![17, 63]);
    }

    #[test]
    fn closure_is_respected() {
        // 5 fails only with 3 present; closure keeps 3 whenever 5 is kept.
        let items: Vec<usize> = (0..10).collect();
        let result = ddmin(
            items,
            10_000,
            |c| c.contains(&5),
            |mut c| {
                if c.contains(&5) && !c.contains(&3) {
                    c.retain(|&x| x != 5);
                }
                c
            },
        );
        assert_eq!(result, vec![3, 5]);
    }
}
