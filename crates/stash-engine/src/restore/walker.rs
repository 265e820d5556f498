//! The walker: streams the snapshot's trees one at a time, creates directories, symlinks and
//! empty files at once, and gathers the blobs of regular files into batches for the workers.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rustic_core::repofile::{Metadata, Node, NodeType};
use rustic_core::{IndexedFull, Repository, TreeId};

use super::RestoreState;
use super::files::{
    Special, apply_metadata, clear_non_dir, ensure_dir, ensure_parent, make_special,
};
use super::plan::{Batch, FileInProgress, Piece, ReadJob, ReadPlan, plan_reads};
use super::reader::finish_file;
use crate::pattern::PatternSet;

pub(super) struct Walker<'a, S: IndexedFull> {
    pub(super) repo: &'a Repository<S>,
    pub(super) includes: &'a PatternSet,
    pub(super) excludes: &'a PatternSet,
    pub(super) state: &'a RestoreState,
    pub(super) jobs: std::sync::mpsc::SyncSender<ReadJob>,
    pub(super) dirs: &'a mut Vec<(PathBuf, Metadata)>,
    pub(super) batch: Batch,
    pub(super) plan: ReadPlan,
    /// The first restored path of each hardlinked inode (device, inode) of the snapshot.
    pub(super) hardlinks: HashMap<(u64, u64), PathBuf>,
}

impl<S: IndexedFull> Walker<'_, S> {
    /// `inside` is the path within the snapshot, `dest` where it goes on disk.
    pub(super) fn walk_tree(
        &mut self,
        tree_id: TreeId,
        inside: &Path,
        dest: &Path,
        included_above: bool,
    ) {
        let tree = match self.repo.get_tree(&tree_id) {
            Ok(tree) => tree,
            Err(err) => {
                self.state.fail(dest, &err.display_log());
                return;
            }
        };
        for node in tree.nodes {
            if self.state.cancel.is_cancelled() {
                return;
            }
            let name = node.name();
            if !matches!(
                Path::new(&name).components().collect::<Vec<_>>().as_slice(),
                [std::path::Component::Normal(_)]
            ) {
                // A hostile or corrupt tree must not write outside the target.
                self.state.fail(
                    &dest.join(&name),
                    &"refusing a node name that is not a single path component",
                );
                continue;
            }
            let inside = inside.join(&name);
            let dest = dest.join(&name);
            if self.excludes.matches(&inside) {
                continue;
            }
            let included =
                included_above || self.includes.is_empty() || self.includes.matches(&inside);
            match &node.node_type {
                NodeType::Dir => self.restore_dir(&node, &inside, &dest, included),
                _ if !included => {}
                NodeType::File => self.restore_file(node, dest),
                NodeType::Symlink { .. } => self.restore_symlink(&node, &dest),
                NodeType::Fifo => self.restore_special(&node, &dest, Special::Fifo),
                NodeType::Dev { device } => {
                    self.restore_special(&node, &dest, Special::BlockDevice(*device));
                }
                NodeType::Chardev { device } => {
                    self.restore_special(&node, &dest, Special::CharDevice(*device));
                }
                NodeType::Socket => {
                    self.state
                        .skipped
                        .lock()
                        .expect("skip list lock poisoned")
                        .push(dest);
                }
            }
        }
    }

    fn restore_dir(&mut self, node: &Node, inside: &Path, dest: &Path, included: bool) {
        if included {
            if let Err(err) = ensure_dir(dest) {
                self.state.fail(dest, &err);
                return;
            }
            self.state.dirs.fetch_add(1, Ordering::Relaxed);
            self.dirs.push((dest.to_path_buf(), node.meta.clone()));
        }
        if let Some(subtree) = node.subtree {
            self.walk_tree(subtree, inside, dest, included);
        }
        if !included && dest.is_dir() {
            // Created on the way to an included entry: give it its snapshot metadata too.
            self.state.dirs.fetch_add(1, Ordering::Relaxed);
            self.dirs.push((dest.to_path_buf(), node.meta.clone()));
        }
    }

    fn restore_symlink(&self, node: &Node, dest: &Path) {
        let result = (|| -> io::Result<()> {
            ensure_parent(dest)?;
            clear_non_dir(dest)?;
            std::os::unix::fs::symlink(node.node_type.to_link(), dest)?;
            apply_metadata(dest, &node.meta, true)
        })();
        match result {
            Ok(()) => {
                self.state.symlinks.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => self.state.fail(dest, &err),
        }
    }

    fn restore_special(&self, node: &Node, dest: &Path, kind: Special) {
        let result = (|| -> io::Result<()> {
            ensure_parent(dest)?;
            clear_non_dir(dest)?;
            make_special(dest, kind)?;
            apply_metadata(dest, &node.meta, false)
        })();
        match result {
            Ok(()) => self.state.file_finished(),
            Err(err) => self.state.fail(dest, &err),
        }
    }

    /// A later name of an inode already restored: linked to it, as restic does, so a volume
    /// of hardlinked files does not grow on restore.
    fn restore_hardlink(&self, first: &Path, dest: &Path) {
        let result = (|| -> io::Result<()> {
            ensure_parent(dest)?;
            clear_non_dir(dest)?;
            match fs::remove_file(dest) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
            fs::hard_link(first, dest)
        })();
        match result {
            Ok(()) => self.state.file_finished(),
            Err(err) => self.state.fail(
                dest,
                &format!("cannot hardlink it to {}: {err}", first.display()),
            ),
        }
    }

    fn restore_file(&mut self, node: Node, dest: PathBuf) {
        if node.meta.links > 1 {
            let inode = (node.meta.device_id, node.meta.inode);
            if let Some(first) = self.hardlinks.get(&inode) {
                return self.restore_hardlink(first, &dest);
            }
            self.hardlinks.insert(inode, dest.clone());
        }
        let opened = (|| -> io::Result<File> {
            ensure_parent(&dest)?;
            clear_non_dir(&dest)?;
            let handle = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&dest)?;
            // Zero-filled without writing: blobs of zeros are then skipped and stay holes.
            handle.set_len(node.meta.size)?;
            Ok(handle)
        })();
        self.state.tracker.file_started(&dest);
        let handle = match opened {
            Ok(handle) => handle,
            Err(err) => return self.state.fail(&dest, &err),
        };
        let content = node.content.clone().unwrap_or_default();
        let mut located = Vec::with_capacity(content.len());
        let mut offset = 0u64;
        for id in &content {
            match self.repo.get_index_entry(id) {
                Ok(entry) => {
                    located.push((*id, entry.pack, entry.location, offset));
                    offset += u64::from(entry.data_length());
                }
                Err(err) => {
                    return self.state.fail(
                        &dest,
                        &format!("blob {id} is missing from the index: {}", err.display_log()),
                    );
                }
            }
        }
        if offset != node.meta.size {
            tracing::warn!(path = %dest.display(), expected = node.meta.size, actual = offset, "file size in the snapshot differs from its content; using the content");
            if let Err(err) = handle.set_len(offset) {
                return self.state.fail(&dest, &err);
            }
        }
        let file = Arc::new(FileInProgress {
            path: dest,
            handle,
            meta: node.meta,
            pending: AtomicUsize::new(located.len()),
            failed: AtomicBool::new(false),
        });
        if located.is_empty() {
            finish_file(&file, self.state);
            return;
        }
        for (id, pack, location, file_offset) in located {
            self.batch.pieces.push(Piece {
                pack,
                offset: location.offset,
                length: location.length,
                uncompressed_length: location.uncompressed_length,
                id,
                file: file.clone(),
                file_offset,
            });
        }
        self.batch.files += 1;
        self.batch.bytes += offset;
        if self.batch.files >= self.plan.batch_files || self.batch.bytes >= self.plan.batch_bytes {
            self.flush();
        }
    }

    /// Hands the gathered pieces to the workers as reads.
    pub(super) fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        for job in plan_reads(batch.pieces, self.plan) {
            if self.jobs.send(job).is_err() {
                // Workers only stop early when they panic; the scope re-raises that.
                return;
            }
        }
    }
}
