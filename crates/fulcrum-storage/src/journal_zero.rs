//! Zero-filling the active fjall journal ahead of its writer, so that an
//! `fdatasync` of the journal flushes data and no file-system metadata.
//!
//! Why: fjall preallocates each journal with `set_len` (a sparse file).
//! Every write into a hole allocates blocks, so the `fdatasync` after it
//! must also write the inode (its block map): on ext4 that is one more
//! I/O the sync waits for, and in a VM one more costly device
//! notification. Blocks that already hold zeros need no allocation, and
//! then `fdatasync` writes only the data (PostgreSQL zero-fills WAL
//! segments for the same reason). Measured on a 2-core VM, ext4, under
//! `redis-benchmark -t set` at `--fsync always`: 3.0 → 2.2 device writes
//! per `fdatasync` (BENCHMARKS.md).
//!
//! The second half of the trick is to never `fstat` the journal between
//! writes: on kernels with fine-grained ("multigrain") timestamps, asking
//! for a file's change time makes the next write store a new one, which
//! dirties the inode again. So the sync path checks the journal with
//! `statx` asking for the link count only (`fjall_engine.rs`).
//!
//! Safety rules (the zeros must never overwrite a journal byte):
//! - fjall writes a journal sequentially from offset 0, and only while
//!   committing a batch, which `FjallStorage::write` does holding the
//!   snapshot fence shared. Zeros are written holding the fence
//!   *exclusively*: no batch is being written meanwhile, and every batch
//!   that returned is already in the file (fjall flushes its buffer on
//!   every commit).
//! - Zeros go only past the journal's data: from the first hole at or
//!   after the zero-filled frontier (`SEEK_HOLE`), so if the writer got
//!   past the frontier its bytes are skipped.
//! - Zeros never extend the file: only the preallocated range below the
//!   file's length is filled. A journal reopened after recovery, which
//!   fjall appends to (`O_APPEND`) at its end, is therefore never touched.
//! - A hole and a zero-filled block read the same, so recovery, which
//!   stops at the first invalid entry, sees exactly what it saw before.
//!
//! Any error (a file system without `SEEK_HOLE`, a failed write) just
//! stops zero-filling that journal; the sync itself goes on as before.

use std::fs::File;
use std::os::unix::fs::FileExt;

/// Bytes zero-filled at a time.
pub(crate) const CHUNK: u64 = 2 * 1024 * 1024;

/// Refill once the estimated zero-filled space ahead of the writer falls
/// below this. A journal starts as if a chunk were ahead of its writer,
/// so one that stays small (tests, idle nodes) is never zero-filled.
pub(crate) const LOW_WATER: u64 = CHUNK / 2;

/// Estimated journal bytes of one batch: its payload plus a margin for
/// entry headers (over-estimating only makes zero-filling more eager).
pub(crate) fn estimate(ops: usize, payload: usize) -> u64 {
    (payload as u64)
        .saturating_add(ops as u64 * 24)
        .saturating_add(32)
}

/// Zero-filling state of the active journal (kept with the sync's own
/// descriptor, under the sync lock).
#[derive(Debug)]
pub(crate) struct ZeroFill {
    /// Journal id this state belongs to.
    id: u64,
    /// Everything below this offset is journal data or zeros.
    frontier: u64,
    /// Estimated zero-filled bytes ahead of the writer.
    ahead: u64,
    /// The writer's estimated progress (`FjallStorage`'s counter) when
    /// `ahead` was last updated.
    seen: u64,
    /// Set once nothing more can be filled (end of the preallocation,
    /// an error).
    done: bool,
}

impl ZeroFill {
    /// Fresh state for journal `id`, whose writer had made `progress`.
    pub(crate) fn new(id: u64, progress: u64) -> ZeroFill {
        ZeroFill {
            id,
            frontier: 0,
            ahead: CHUNK,
            seen: progress,
            done: false,
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Whether a chunk should be zero-filled now, given the writer's
    /// estimated `progress` (bytes written since the node started).
    pub(crate) fn due(&mut self, progress: u64) -> bool {
        let grown = progress.saturating_sub(self.seen);
        self.seen = progress;
        self.ahead = self.ahead.saturating_sub(grown);
        !self.done && self.ahead < LOW_WATER
    }

    /// Zero-fills the next chunk past the journal's data in `file` (a
    /// writable descriptor of the journal, not in append mode). Call with
    /// the snapshot fence held exclusively (see the module docs).
    pub(crate) fn fill(&mut self, file: &File) {
        match fill_after(file, self.frontier) {
            Ok(Some((start, end))) => {
                self.frontier = end;
                // The writer is at most a block short of `start`.
                self.ahead = end - start;
            }
            Ok(None) => self.done = true,
            Err(e) => {
                tracing::debug!(error = %e, journal = self.id, "journal zero-fill stopped");
                self.done = true;
            }
        }
    }
}

/// Writes zeros over up to [`CHUNK`] bytes starting at the first hole at
/// or after `from`, never past the file's length. Returns the range
/// filled, or `None` when there is nothing left to fill.
fn fill_after(file: &File, from: u64) -> std::io::Result<Option<(u64, u64)>> {
    use rustix::fs::{seek, SeekFrom};
    let len = seek(file, SeekFrom::End(0))?;
    if from >= len {
        return Ok(None);
    }
    let start = seek(file, SeekFrom::Hole(from))?;
    let end = len.min(start.saturating_add(CHUNK));
    if start >= end {
        return Ok(None);
    }
    let zeros = vec![0u8; (end - start) as usize];
    file.write_all_at(&zeros, start)?;
    Ok(Some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{seek, SeekFrom};

    fn sparse(len: u64, data: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(dir.path().join("0.jnl"))
            .unwrap();
        file.set_len(len).unwrap();
        file.write_all_at(data, 0).unwrap();
        (dir, file)
    }

    #[test]
    fn fills_past_the_data_and_never_over_it() {
        let data = vec![7u8; 10_000];
        let (_dir, file) = sparse(8 * CHUNK, &data);
        let mut z = ZeroFill::new(0, 0);
        z.fill(&file);
        let mut back = vec![0u8; data.len()];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, data, "journal bytes untouched");
        // Filled from the first hole: the data's last block is not a hole.
        assert!(z.frontier >= CHUNK && z.frontier <= 12_288 + CHUNK);
        assert_eq!(seek(&file, SeekFrom::Hole(0)).unwrap(), z.frontier);
        assert_eq!(
            seek(&file, SeekFrom::End(0)).unwrap(),
            8 * CHUNK,
            "length kept"
        );
    }

    #[test]
    fn skips_data_the_writer_put_past_the_frontier() {
        let (_dir, file) = sparse(8 * CHUNK, b"x");
        let mut z = ZeroFill::new(0, 0);
        z.fill(&file);
        let frontier = z.frontier;
        // The writer overtook the zeros.
        let more = vec![9u8; 100_000];
        file.write_all_at(&more, frontier - 50_000).unwrap();
        z.fill(&file);
        let mut back = vec![0u8; more.len()];
        file.read_exact_at(&mut back, frontier - 50_000).unwrap();
        assert_eq!(back, more, "the writer's bytes survive");
        assert!(z.frontier > frontier + 50_000);
    }

    #[test]
    fn never_extends_the_file() {
        let (_dir, file) = sparse(CHUNK + 4096, b"x");
        let mut z = ZeroFill::new(0, 0);
        z.fill(&file);
        z.fill(&file);
        assert!(z.done, "nothing left below the length");
        assert_eq!(seek(&file, SeekFrom::End(0)).unwrap(), CHUNK + 4096);
        // A journal with no preallocation (reopened for appending).
        let (_dir, full) = sparse(5000, &[1u8; 5000]);
        let mut z = ZeroFill::new(0, 0);
        z.fill(&full);
        assert!(z.done);
        assert_eq!(seek(&full, SeekFrom::End(0)).unwrap(), 5000);
    }

    #[test]
    fn is_due_only_after_the_writer_used_up_the_credit() {
        let mut z = ZeroFill::new(3, 1000);
        assert!(!z.due(1000), "a fresh journal has credit");
        assert!(!z.due(1000 + LOW_WATER / 2));
        assert!(z.due(1000 + LOW_WATER + 1));
        z.done = true;
        assert!(!z.due(u64::MAX), "nothing to do once done");
    }
}
