//! The HNSW graph (hnsw_rs): construction, filtered search, dump and reload.

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr::NonNull;

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::{HnswIo, ReloadOptions};
use hnsw_rs::prelude::{Distance, FilterT, Hnsw};

use super::flat::{FlatGraph, PointLists};
use super::score;
use crate::index::store::manifest::GraphDump;
use crate::index::HnswParams;
use crate::index::IndexError;

/// hnsw_rs' `NB_LAYER_MAX`: `file_dump` refuses graphs created with fewer layers.
const MAX_LAYER: usize = 16;

/// Batches at least this large are inserted by rayon in parallel.
const PARALLEL_INSERT_MIN: usize = 256;

/// Distance `1 - a·b` on L2-normalised vectors, clamped at 0.
///
/// Not anndists' `DistDot`: that one asserts `1 - a·b >= 0`, which rounding breaks for an exact
/// copy of a gallery image (a·b = 1.0000001 panics), and it is scalar unless hnsw_rs is built
/// with extra features; this one uses the same vectorised dot as exact search.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - score::dot(a, b)).max(0.0)
    }
}

/// An HNSW graph whose data ids are index slots.
pub(crate) struct Graph {
    /// When reloaded from a dump, points borrow vectors memory-mapped by `*io`; the `'static`
    /// is a lie confined to this struct (see `Drop`), because hnsw_rs ties the graph's
    /// lifetime to its reloader (upstream issue #19) and an index must own both.
    hnsw: ManuallyDrop<Hnsw<'static, f32, UnitDot>>,
    /// The reloader, allocated by `Box::into_raw` and freed in `Drop` after `hnsw`.
    io: Option<NonNull<HnswIo>>,
}

// SAFETY: `io` is only touched at construction and destruction; `HnswIo` itself is Send + Sync
// (paths, options and a read-only mmap), and `Hnsw` synchronises its own state.
unsafe impl Send for Graph {}
// SAFETY: as above; shared access never reaches `io`.
unsafe impl Sync for Graph {}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: `hnsw` is dropped exactly once, here, before the reloader it borrows from.
        unsafe { ManuallyDrop::drop(&mut self.hnsw) };
        if let Some(io) = self.io.take() {
            // SAFETY: `io` came from `Box::into_raw` and nothing borrows from it any more.
            drop(unsafe { Box::from_raw(io.as_ptr()) });
        }
    }
}

impl Graph {
    /// An empty graph sized for about `capacity` points.
    pub(crate) fn new(params: &HnswParams, capacity: usize) -> Self {
        let hnsw = Hnsw::new(
            params.max_nb_connection,
            capacity.max(1024),
            MAX_LAYER,
            params.ef_construction,
            UnitDot,
        );
        Graph {
            hnsw: ManuallyDrop::new(hnsw),
            io: None,
        }
    }

    /// Checks a dump without loading it: both files have their recorded sizes and the graph
    /// file starts with one of hnsw_rs's description magics (`MAGICDESCR_2/3/4` in
    /// `hnswio.rs`). Opening an index only reads the flat graph, but later adds need the dump.
    pub(crate) fn check_dump(dir: &Path, dump: &GraphDump) -> Result<(), IndexError> {
        let graph = dir.join(format!("{}.hnsw.graph", dump.basename));
        check_size(&graph, dump.graph_bytes)?;
        check_size(
            &dir.join(format!("{}.hnsw.data", dump.basename)),
            dump.data_bytes,
        )?;
        let mut magic = [0u8; 4];
        std::fs::File::open(&graph)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .map_err(IndexError::io(&graph))?;
        if ![0x002a_677f_u32, 0x002a_6771, 0x002a_6779].contains(&u32::from_ne_bytes(magic)) {
            return Err(IndexError::corrupt(graph, "not an hnsw_rs graph dump"));
        }
        Ok(())
    }

    /// Reloads a dump from `dir`, memory-mapping its vectors instead of reading them.
    pub(crate) fn load(dir: &Path, dump: &GraphDump) -> Result<Self, IndexError> {
        check_size(
            &dir.join(format!("{}.hnsw.graph", dump.basename)),
            dump.graph_bytes,
        )?;
        check_size(
            &dir.join(format!("{}.hnsw.data", dump.basename)),
            dump.data_bytes,
        )?;
        let io = HnswIo::new_with_options(dir, &dump.basename, ReloadOptions::new(true));
        let io = NonNull::from(Box::leak(Box::new(io)));
        // hnsw_rs asserts (panics) on some malformed dumps: turn that into an error.
        // SAFETY: `io` is valid and uniquely borrowed for the duration of the load.
        let loaded = catch_unwind(AssertUnwindSafe(|| unsafe { (*io.as_ptr()).load_hnsw() }));
        let hnsw: Hnsw<'static, f32, UnitDot> = match loaded {
            Ok(Ok(h)) => h,
            failed => {
                // SAFETY: the load failed, so nothing borrows from `io`.
                drop(unsafe { Box::from_raw(io.as_ptr()) });
                let message = match failed {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => "the graph dump is malformed (hnsw_rs rejected it)".into(),
                };
                return Err(IndexError::corrupt(dir.join(&dump.basename), message));
            }
        };
        release_freed_heap();
        let graph = Graph {
            hnsw: ManuallyDrop::new(hnsw),
            io: Some(io),
        };
        if graph.len() != dump.points {
            let msg = format!(
                "{} points, the manifest records {}",
                graph.len(),
                dump.points
            );
            return Err(IndexError::corrupt(dir.join(&dump.basename), msg));
        }
        Ok(graph)
    }

    /// Number of points in the graph.
    pub(crate) fn len(&self) -> usize {
        self.hnsw.get_nb_point()
    }

    /// The graph's neighbour lists as a [`FlatGraph`] over slots `0..len()` (data ids are
    /// slots, inserted densely from 0); `dir` names the index in errors.
    pub(crate) fn to_flat(&self, dir: &Path) -> Result<FlatGraph, IndexError> {
        let n = self.len();
        let indexation = self.hnsw.get_point_indexation();
        let top = self.hnsw.get_max_level_observed() as usize;
        let mut entry = None;
        let mut points = Vec::with_capacity(n);
        if n > 0 {
            for point in indexation {
                let slot = point.get_origin_id();
                let level = point.get_point_id().0 as usize;
                if slot >= n {
                    return Err(IndexError::Graph {
                        path: dir.to_path_buf(),
                        message: format!("graph point with slot {slot} beyond its {n} points"),
                    });
                }
                if level == top && entry.is_none() {
                    entry = Some(slot);
                }
                let mut levels = point.get_neighborhood_id();
                levels.truncate(level + 1);
                points.push(PointLists {
                    slot,
                    levels: levels
                        .into_iter()
                        .map(|l| l.into_iter().map(|nb| nb.d_id as u32).collect())
                        .collect(),
                });
            }
        }
        Ok(FlatGraph::from_lists(n, entry.unwrap_or(0), points))
    }

    /// Inserts `(vector, slot)` pairs, in parallel for large batches.
    pub(crate) fn insert(&self, items: &[(&[f32], usize)]) {
        if items.len() >= PARALLEL_INSERT_MIN {
            self.hnsw.parallel_insert_slice(&items.to_vec());
        } else {
            items.iter().for_each(|&item| self.hnsw.insert_slice(item));
        }
    }

    /// Approximate nearest slots, each with its vector as the graph stores it (`None` if the
    /// graph cannot return it); `filter` is applied during traversal.
    pub(crate) fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn FilterT>,
    ) -> Vec<(usize, Option<Vec<f32>>)> {
        let points = self.hnsw.get_point_indexation();
        self.hnsw
            .search_filter(query, k, ef.max(k), filter)
            .into_iter()
            .map(|n| (n.d_id, points.get_point_data(&n.p_id)))
            .collect()
    }

    /// Dumps the graph as `<basename>.hnsw.{graph,data}` in `dir` and fsyncs both files.
    pub(crate) fn dump(&self, dir: &Path, basename: &str) -> Result<GraphDump, IndexError> {
        let written = self
            .hnsw
            .file_dump(dir, basename)
            .map_err(|e| IndexError::Graph {
                path: dir.to_path_buf(),
                message: format!("{e:#}"),
            })?;
        let graph = dir.join(format!("{written}.hnsw.graph"));
        let data = dir.join(format!("{written}.hnsw.data"));
        Ok(GraphDump {
            basename: written,
            points: self.len(),
            graph_bytes: sync_file(&graph)?,
            data_bytes: sync_file(&data)?,
            flat_bytes: None,
        })
    }
}

/// Returns free heap pages to the system. hnsw_rs builds every point's neighbourhood twice
/// while loading (a map of all of them, then the graph's own lists) and frees the first; glibc
/// keeps such memory in the process unless asked.
pub fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Fsyncs a file and returns its size.
fn sync_file(path: &Path) -> Result<u64, IndexError> {
    let f = std::fs::File::open(path).map_err(IndexError::io(path))?;
    f.sync_all().map_err(IndexError::io(path))?;
    Ok(f.metadata().map_err(IndexError::io(path))?.len())
}

/// Fails with `Corrupt` (a missing file too) unless `path` has exactly `expected` bytes.
fn check_size(path: &Path, expected: u64) -> Result<(), IndexError> {
    let len = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexError::corrupt(path, "missing graph file"))
        }
        r => r.map_err(IndexError::io(path))?.len(),
    };
    if len != expected {
        let msg = format!("{len} bytes, the manifest records {expected} (truncated or replaced)");
        return Err(IndexError::corrupt(path, msg));
    }
    Ok(())
}
