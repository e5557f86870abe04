//! Topology-aware replica placement along the token walk.

use std::collections::BTreeMap;

use super::{RingNode, Token};

/// Dense DC and rack indices of the nodes, for replica placement.
pub(super) struct Topology {
    node_dc: Vec<usize>,
    node_rack: Vec<usize>,
    rack_dc: Vec<usize>,
    rack_sizes: Vec<u32>,
    dcs: usize,
}

impl Topology {
    pub(super) fn new(nodes: &[RingNode]) -> Topology {
        let mut dc_ids: BTreeMap<&str, usize> = BTreeMap::new();
        let mut rack_ids: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let mut t = Topology {
            node_dc: Vec::with_capacity(nodes.len()),
            node_rack: Vec::with_capacity(nodes.len()),
            rack_dc: Vec::new(),
            rack_sizes: Vec::new(),
            dcs: 0,
        };
        for n in nodes {
            let next_dc = dc_ids.len();
            let dc = *dc_ids.entry(&n.dc).or_insert(next_dc);
            let next_rack = rack_ids.len();
            let rack = *rack_ids.entry((&n.dc, &n.rack)).or_insert(next_rack);
            if rack == t.rack_dc.len() {
                t.rack_dc.push(dc);
                t.rack_sizes.push(0);
            }
            t.rack_sizes[rack] += 1;
            t.node_dc.push(dc);
            t.node_rack.push(rack);
        }
        t.dcs = dc_ids.len();
        t
    }

    /// Fills `out` with `want` distinct node indices for the walk starting at
    /// token `start`: each pick is the first node on the walk among those
    /// whose `(replicas in its DC, replicas in its rack)` is least.
    pub(super) fn place(&self, tokens: &[Token], start: usize, want: usize, out: &mut Vec<u32>) {
        out.clear();
        let mut dc_used = vec![0u32; self.dcs];
        let mut rack_used = vec![0u32; self.rack_sizes.len()];
        let mut rack_left = self.rack_sizes.clone();
        let mut chosen = vec![false; self.node_dc.len()];
        while out.len() < want {
            let target = (0..rack_left.len())
                .filter(|&r| rack_left[r] > 0)
                .map(|r| (dc_used[self.rack_dc[r]], rack_used[r]))
                .min();
            let Some(target) = target else { break };
            let pick = (0..tokens.len())
                .map(|i| tokens[(start + i) % tokens.len()].node)
                .find(|&n| {
                    let n = n as usize;
                    !chosen[n] && (dc_used[self.node_dc[n]], rack_used[self.node_rack[n]]) == target
                });
            // Every node has at least one token, and `target` is the key of
            // some unchosen node, so the walk always finds one.
            let Some(pick) = pick else { break };
            let n = pick as usize;
            chosen[n] = true;
            dc_used[self.node_dc[n]] += 1;
            rack_used[self.node_rack[n]] += 1;
            rack_left[self.node_rack[n]] -= 1;
            out.push(pick);
        }
    }
}
