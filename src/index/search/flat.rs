//! The HNSW graph in the compact, read-only form a serving process searches.
//!
//! hnsw_rs keeps every point as a reference-counted object with 16 preallocated layer lists and
//! one allocation per neighbour: about 4.6 KB per point at M 24, 1.5x the f32 vectors of a
//! 768-d gallery before the vectors themselves. Serving only needs the neighbour ids, so after
//! a build (or when opening an index) the graph is flattened into plain `u32` arrays (about
//! 0.2 KB per point) and searched over the index's own memory-mapped embeddings; hnsw_rs's dump
//! stays on disk for adding to the graph later.
//!
//! File `<basename>.flat`, little-endian `u32` words:
//! `magic[2] version n max_level entry edges`, layer 0 as `offsets[n + 1] neighbours[edges]`,
//! then per upper level `count edges slots[count] offsets[count + 1] neighbours[edges]`, and a
//! CRC-32 of all preceding words.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{Read, Write};
use std::path::Path;

use super::score::{Scored, TopK};
use crate::index::store::checksum::FileSum;
use crate::index::IndexError;

const MAGIC: [u32; 2] = [u32::from_le_bytes(*b"IVTF"), u32::from_le_bytes(*b"LAT\0")];
const VERSION: u32 = 1;
const HEADER_WORDS: usize = 6;

/// One upper layer: the slots on it (sorted) and their neighbour lists, CSR.
struct UpperLayer {
    slots: Vec<u32>,
    offsets: Vec<u32>,
    neighbours: Vec<u32>,
}

impl UpperLayer {
    fn neighbours_of(&self, slot: u32) -> &[u32] {
        match self.slots.binary_search(&slot) {
            Ok(i) => &self.neighbours[self.offsets[i] as usize..self.offsets[i + 1] as usize],
            Err(_) => &[],
        }
    }
}

/// A read-only HNSW graph over slots `0..len()`: neighbour ids only, vectors live elsewhere.
pub(crate) struct FlatGraph {
    offsets: Vec<u32>,
    neighbours: Vec<u32>,
    /// Levels 1, 2, … (index 0 is level 1).
    upper: Vec<UpperLayer>,
    entry: u32,
}

/// A point's neighbour lists, level 0 first (the input of [`FlatGraph::from_lists`]).
pub(crate) struct PointLists {
    pub slot: usize,
    pub levels: Vec<Vec<u32>>,
}

impl FlatGraph {
    /// Builds the flat graph of `n` slots from every point's lists (levels `0..=its level`);
    /// `entry` is a point on the top level.
    pub(crate) fn from_lists(
        n: usize,
        entry: usize,
        points: impl IntoIterator<Item = PointLists>,
    ) -> Self {
        let mut level0: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut upper: Vec<Vec<(u32, Vec<u32>)>> = Vec::new();
        for p in points {
            let mut levels = p.levels.into_iter();
            if let Some(l0) = levels.next() {
                level0[p.slot] = l0;
            }
            for (i, list) in levels.enumerate() {
                if upper.len() <= i {
                    upper.resize_with(i + 1, Vec::new);
                }
                upper[i].push((p.slot as u32, list));
            }
        }
        let (offsets, neighbours) = csr(level0.iter().map(Vec::as_slice));
        drop(level0);
        let upper = upper
            .into_iter()
            .map(|mut layer| {
                layer.sort_unstable_by_key(|(s, _)| *s);
                let (offsets, neighbours) = csr(layer.iter().map(|(_, l)| l.as_slice()));
                UpperLayer {
                    slots: layer.iter().map(|(s, _)| *s).collect(),
                    offsets,
                    neighbours,
                }
            })
            .collect();
        FlatGraph {
            offsets,
            neighbours,
            upper,
            entry: entry as u32,
        }
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Heap bytes held (sizes the buffer the file is written from).
    fn heap_bytes(&self) -> usize {
        let upper: usize = self
            .upper
            .iter()
            .map(|l| l.slots.len() + l.offsets.len() + l.neighbours.len())
            .sum();
        4 * (self.offsets.len() + self.neighbours.len() + upper)
    }

    fn neighbours0(&self, slot: u32) -> &[u32] {
        let s = slot as usize;
        &self.neighbours[self.offsets[s] as usize..self.offsets[s + 1] as usize]
    }

    /// The `k` best slots by `score` (a similarity: higher is better) among those `allow`
    /// accepts, best first, from a beam of `ef` candidates on the bottom layer. Nodes that
    /// `allow` rejects are still walked through, as hnsw_rs does with its filters.
    pub(crate) fn search(
        &self,
        score: &mut dyn FnMut(usize) -> f32,
        k: usize,
        ef: usize,
        allow: &dyn Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        if self.len() == 0 || k == 0 {
            return Vec::new();
        }
        let ef = ef.max(k);
        let mut cur = self.entry;
        let mut cur_score = score(cur as usize);
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                for &v in layer.neighbours_of(cur) {
                    let s = score(v as usize);
                    if s > cur_score {
                        (cur, cur_score, moved) = (v, s, true);
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            visited.reset(self.len());
            visited.insert(cur);
            // Candidates: best first. Results: the best `ef` allowed ones.
            let mut candidates = BinaryHeap::from([Reverse(Scored {
                score: cur_score,
                slot: cur as usize,
            })]);
            let mut results = TopK::new(ef);
            if allow(cur as usize) {
                results.push(cur as usize, cur_score);
            }
            while let Some(Reverse(Scored { score: s, slot: c })) = candidates.pop() {
                if results.full_at().is_some_and(|w| s < w) {
                    break;
                }
                for &v in self.neighbours0(c as u32) {
                    if !visited.insert(v) {
                        continue;
                    }
                    let (slot, sv) = (v as usize, score(v as usize));
                    if results.full_at().is_none_or(|w| sv > w) {
                        candidates.push(Reverse(Scored { score: sv, slot }));
                        if allow(slot) {
                            results.push(slot, sv);
                        }
                    }
                }
            }
            let mut best = results.into_sorted();
            best.truncate(k);
            best
        })
    }

    /// Writes the graph to `path` and fsyncs it; returns the file's size and checksum.
    pub(crate) fn write(&self, path: &Path) -> Result<FileSum, IndexError> {
        let mut words: Vec<u32> = Vec::with_capacity(self.heap_bytes() / 4 + 16);
        words.extend_from_slice(&MAGIC);
        words.extend([
            VERSION,
            self.len() as u32,
            self.upper.len() as u32,
            self.entry,
        ]);
        words.push(self.neighbours.len() as u32);
        words.extend_from_slice(&self.offsets);
        words.extend_from_slice(&self.neighbours);
        for layer in &self.upper {
            words.extend([layer.slots.len() as u32, layer.neighbours.len() as u32]);
            words.extend_from_slice(&layer.slots);
            words.extend_from_slice(&layer.offsets);
            words.extend_from_slice(&layer.neighbours);
        }
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        let crc = crc32fast::hash(bytes);
        let mut f = std::fs::File::create(path).map_err(IndexError::io(path))?;
        f.write_all(bytes).map_err(IndexError::io(path))?;
        f.write_all(&crc.to_le_bytes())
            .map_err(IndexError::io(path))?;
        f.sync_all().map_err(IndexError::io(path))?;
        Ok(FileSum::of(bytes).then(FileSum::of(&crc.to_le_bytes())))
    }

    /// Reads a graph written by [`FlatGraph::write`], checking its size, checksum, structure
    /// and that it covers `points` slots.
    pub(crate) fn read(path: &Path, bytes: u64, points: usize) -> Result<Self, IndexError> {
        let corrupt = |m: String| IndexError::corrupt(path, m);
        let mut f = match std::fs::File::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt("missing graph file".into()))
            }
            r => r.map_err(IndexError::io(path))?,
        };
        let len = f.metadata().map_err(IndexError::io(path))?.len();
        if len != bytes || len % 4 != 0 || len < 4 * (HEADER_WORDS as u64 + 3) {
            return Err(corrupt(format!(
                "{len} bytes, the manifest records {bytes} (truncated or replaced)"
            )));
        }
        let mut words = vec![0u32; (len / 4) as usize];
        f.read_exact(bytemuck::cast_slice_mut(&mut words))
            .map_err(IndexError::io(path))?;
        let crc = words.pop().unwrap_or_default();
        if crc32fast::hash(bytemuck::cast_slice(&words)) != crc {
            return Err(corrupt("checksum mismatch (the file is damaged)".into()));
        }
        let mut r = Words { w: &words, at: 0 };
        let header = r.take(HEADER_WORDS + 1).map_err(corrupt)?;
        if header[..2] != MAGIC || header[2] != VERSION {
            return Err(corrupt("not an ivt flat graph of a known version".into()));
        }
        let (n, levels, entry, edges) = (header[3] as usize, header[4], header[5], header[6]);
        if n != points {
            return Err(corrupt(format!(
                "{n} points, the manifest records {points}"
            )));
        }
        let offsets = r.take(n + 1).map_err(corrupt)?.to_vec();
        let neighbours = r.take(edges as usize).map_err(corrupt)?.to_vec();
        check_csr(&offsets, &neighbours, n).map_err(corrupt)?;
        let mut upper = Vec::new();
        for _ in 0..levels {
            let head = r.take(2).map_err(corrupt)?;
            let (count, edges) = (head[0] as usize, head[1] as usize);
            let slots = r.take(count).map_err(corrupt)?.to_vec();
            let offsets = r.take(count + 1).map_err(corrupt)?.to_vec();
            let neighbours = r.take(edges).map_err(corrupt)?.to_vec();
            check_csr(&offsets, &neighbours, n).map_err(corrupt)?;
            if slots.windows(2).any(|w| w[0] >= w[1]) || slots.iter().any(|&s| s as usize >= n) {
                return Err(corrupt("upper-layer slots out of order or range".into()));
            }
            upper.push(UpperLayer {
                slots,
                offsets,
                neighbours,
            });
        }
        if r.at != words.len() {
            return Err(corrupt("trailing data after the last layer".into()));
        }
        let on_top = upper
            .last()
            .is_none_or(|l: &UpperLayer| l.slots.binary_search(&entry).is_ok());
        if n > 0 && (entry as usize >= n || !on_top) {
            return Err(corrupt("entry point not on the top layer".into()));
        }
        Ok(FlatGraph {
            offsets,
            neighbours,
            upper,
            entry,
        })
    }
}

/// Offsets and concatenated lists.
fn csr<'a>(lists: impl Iterator<Item = &'a [u32]>) -> (Vec<u32>, Vec<u32>) {
    let mut offsets = vec![0u32];
    let mut neighbours = Vec::new();
    for l in lists {
        neighbours.extend_from_slice(l);
        offsets.push(neighbours.len() as u32);
    }
    (offsets, neighbours)
}

fn check_csr(offsets: &[u32], neighbours: &[u32], n: usize) -> Result<(), String> {
    if offsets.first() != Some(&0)
        || offsets.last().map(|&o| o as usize) != Some(neighbours.len())
        || offsets.windows(2).any(|w| w[0] > w[1])
    {
        return Err("neighbour offsets are inconsistent".into());
    }
    if neighbours.iter().any(|&v| v as usize >= n) {
        return Err("a neighbour id is out of range".into());
    }
    Ok(())
}

/// A cursor over the file's words.
struct Words<'a> {
    w: &'a [u32],
    at: usize,
}

impl<'a> Words<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u32], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.w.len());
        let Some(end) = end else {
            return Err("ends early (truncated)".into());
        };
        let out = &self.w[self.at..end];
        self.at = end;
        Ok(out)
    }
}

/// Visited marks by generation, so a search does not clear an array the size of the gallery.
struct Visited {
    marks: Vec<u32>,
    generation: u32,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.marks.fill(0);
            self.generation = 1;
        }
    }

    /// Marks `slot`; false if it was already marked in this search.
    fn insert(&mut self, slot: u32) -> bool {
        let m = &mut self.marks[slot as usize];
        let fresh = *m != self.generation;
        *m = self.generation;
        fresh
    }
}

thread_local! {
    static VISITED: RefCell<Visited> = const {
        RefCell::new(Visited { marks: Vec::new(), generation: 0 })
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `n` slots on layer 0 (each linked to ±1, ±2), slot 0 alone on level 1.
    fn ring(n: usize) -> FlatGraph {
        let points = (0..n).map(|s| {
            let l0 = [n - 2, n - 1, 1, 2]
                .iter()
                .map(|d| ((s + d) % n) as u32)
                .collect();
            let mut levels = vec![l0];
            if s == 0 {
                levels.push(Vec::new());
            }
            PointLists { slot: s, levels }
        });
        FlatGraph::from_lists(n, 0, points)
    }

    #[test]
    fn search_walks_to_the_best_allowed_slots() {
        let g = ring(50);
        // Similarity peaks at slot 30.
        let mut score = |s: usize| -((s as f32) - 30.0).abs();
        assert_eq!(
            g.search(&mut score, 3, 8, &|_| true),
            vec![(30, 0.0), (29, -1.0), (31, -1.0)]
        );
        let odd = |s: usize| s % 2 == 1;
        let got: Vec<usize> = g
            .search(&mut score, 2, 8, &odd)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(got, vec![29, 31]);
    }

    #[test]
    fn the_file_round_trips_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.flat");
        let g = ring(20);
        let bytes = g.write(&path).unwrap().bytes;
        let back = FlatGraph::read(&path, bytes, 20).unwrap();
        assert_eq!(back.offsets, g.offsets);
        assert_eq!(back.neighbours, g.neighbours);
        assert_eq!(back.upper.len(), 1);
        let err = FlatGraph::read(&path, bytes, 21).err().unwrap().to_string();
        assert!(err.contains("21"), "{err}");
        let mut raw = std::fs::read(&path).unwrap();
        raw[40] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        let err = FlatGraph::read(&path, bytes, 20).err().unwrap().to_string();
        assert!(err.contains("checksum"), "{err}");
        std::fs::write(&path, &raw[..raw.len() - 8]).unwrap();
        let err = FlatGraph::read(&path, bytes, 20).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
    }
}
