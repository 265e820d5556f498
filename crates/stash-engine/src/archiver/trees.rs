//! Trees built bottom-up from the walk, serialised as restic does, so a snapshot of the same
//! input has the same tree ids as `rustic_core`'s archiver gives.
//!
//! The walk yields entries depth first in name order. [`Shape`] turns that stream into
//! "enter a directory", "leave it" and "add an entry" steps, creating the directories above the
//! backup paths (`/`, `/data`, ...) as `rustic_core` does: mode 0755 and no other metadata.
//! [`TreeBuilder`] keeps one open tree per level; leaving a directory serialises its tree,
//! stores it once, and adds the directory's node, with the tree's id, to its parent.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use rustic_core::TreeId;
use rustic_core::repofile::{BlobType, Metadata, Node, NodeType, SnapshotSummary, Tree};
use rustic_core::{RusticError, RusticResult};

use super::Shared;
use super::pack::{PackBuilder, Sealer};

/// One step of building the trees, in walk order.
pub(crate) enum Step {
    Enter(Box<Node>),
    Leave,
}

/// Where the walk is in the snapshot's tree.
#[derive(Default)]
pub(crate) struct Shape {
    current: PathBuf,
}

impl Shape {
    /// Steps into `tree_path` (a directory's own path, a file's parent), pushing the steps onto
    /// `steps`. Returns `node` back when it is an entry of the directory reached; `None` when
    /// the node is that directory itself (it was entered).
    pub(crate) fn place(
        &mut self,
        tree_path: &Path,
        node: Node,
        steps: &mut Vec<Step>,
    ) -> Option<Node> {
        loop {
            let Ok(missing) = tree_path.strip_prefix(&self.current) else {
                if !self.pop() {
                    // Unreachable for absolute paths; an entry outside every tree is dropped.
                    return None;
                }
                steps.push(Step::Leave);
                continue;
            };
            let missing = missing.to_path_buf();
            for component in missing.components() {
                self.current.push(component);
                let Component::Normal(name) = component else {
                    continue;
                };
                if node.is_dir() && tree_path == self.current {
                    steps.push(Step::Enter(Box::new(node)));
                    return None;
                }
                steps.push(Step::Enter(Box::new(directory_above_the_backup(name))));
            }
            return Some(node);
        }
    }

    /// Leaves every open directory.
    pub(crate) fn finish(&mut self, steps: &mut Vec<Step>) {
        while self.pop() {
            steps.push(Step::Leave);
        }
    }

    fn pop(&mut self) -> bool {
        let mut components = self.current.components();
        while let Some(last) = components.next_back() {
            if matches!(last, Component::Normal(_) | Component::Prefix(_)) {
                self.current = components.collect();
                return true;
            }
        }
        false
    }
}

fn directory_above_the_backup(name: &OsStr) -> Node {
    let meta = Metadata {
        mode: Some(0o755),
        ..Metadata::default()
    };
    Node::new_node(name, NodeType::Dir, meta)
}

/// The open trees, innermost last, and the pack of new tree blobs.
pub(crate) struct TreeBuilder<'a> {
    shared: &'a Shared,
    tree: Tree,
    open: Vec<(Node, Tree)>,
    sealer: Sealer,
    pack: PackBuilder,
    pub(crate) summary: SnapshotSummary,
}

impl<'a> TreeBuilder<'a> {
    pub(crate) fn new(shared: &'a Shared, summary: SnapshotSummary) -> RusticResult<Self> {
        Ok(Self {
            shared,
            tree: Tree::default(),
            open: Vec::new(),
            sealer: shared.sealer()?,
            pack: PackBuilder::new(BlobType::Tree, shared.tree_pack_size),
            summary,
        })
    }

    pub(crate) fn step(&mut self, step: Step) -> RusticResult<()> {
        match step {
            Step::Enter(node) => {
                let parent = std::mem::take(&mut self.tree);
                self.open.push((*node, parent));
            }
            Step::Leave => {
                let Some((mut node, parent)) = self.open.pop() else {
                    return Err(RusticError::new(
                        rustic_core::ErrorKind::Internal,
                        "the archiver left more directories than it entered",
                    ));
                };
                let tree = std::mem::replace(&mut self.tree, parent);
                node.subtree = Some(self.store(&tree)?);
                self.tree.nodes.push(node);
            }
        }
        Ok(())
    }

    /// Adds a file (or link, device, ...) node; `size` is the bytes read for it.
    pub(crate) fn add(&mut self, node: Node, size: u64) {
        self.summary.files_new += 1;
        self.summary.total_files_processed += 1;
        self.summary.total_bytes_processed += size;
        self.tree.nodes.push(node);
    }

    /// Stores the root tree and the last tree pack; the root's id.
    pub(crate) fn finish(mut self) -> RusticResult<(TreeId, SnapshotSummary)> {
        let root = std::mem::take(&mut self.tree);
        let id = self.store(&root)?;
        if !self.pack.is_empty() {
            let (file, pack) = self.pack.finish(self.sealer.cipher());
            self.shared.store.save_pack(file, pack)?;
        }
        Ok((id, self.summary))
    }

    fn store(&mut self, tree: &Tree) -> RusticResult<TreeId> {
        let (bytes, id) = tree.serialize().map_err(|err| {
            RusticError::with_source(
                rustic_core::ErrorKind::Internal,
                "Failed to serialize a tree.",
                err,
            )
        })?;
        self.summary.dirs_new += 1;
        self.summary.total_dirs_processed += 1;
        self.summary.total_dirsize_processed += bytes.len() as u64;
        let raw = super::id_bytes(*id);
        if self.shared.known.claim(BlobType::Tree, raw) {
            let sealed = self.sealer.seal(&bytes).map_err(super::internal)?;
            self.summary.tree_blobs += 1;
            self.summary.data_added += bytes.len() as u64;
            self.summary.data_added_packed += sealed.len() as u64;
            self.summary.data_added_trees += bytes.len() as u64;
            self.summary.data_added_trees_packed += sealed.len() as u64;
            if self.pack.add(raw, &sealed, bytes.len()) {
                let (file, pack) = self.pack.finish(self.sealer.cipher());
                self.shared.store.save_pack(file, pack)?;
            }
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> Node {
        Node::new_node(OsStr::new(name), NodeType::Dir, Metadata::default())
    }

    fn file(name: &str) -> Node {
        Node::new_node(OsStr::new(name), NodeType::File, Metadata::default())
    }

    /// The steps as text: `+name` enter, `-` leave, `name` an entry.
    fn shape_of(entries: &[(&str, Node)]) -> Vec<String> {
        let mut shape = Shape::default();
        let mut out = Vec::new();
        for (path, node) in entries {
            let mut steps = Vec::new();
            let entry = shape.place(Path::new(path), node.clone(), &mut steps);
            out.extend(steps.into_iter().map(|step| match step {
                Step::Enter(node) => format!("+{}", node.name().to_string_lossy()),
                Step::Leave => "-".to_string(),
            }));
            if let Some(node) = entry {
                out.push(node.name().to_string_lossy().into_owned());
            }
        }
        let mut steps = Vec::new();
        shape.finish(&mut steps);
        out.extend(steps.iter().map(|_| "-".to_string()));
        out
    }

    #[test]
    fn directories_above_the_backup_path_are_entered_and_every_one_is_left() {
        // Files come with their directory's path, directories with their own.
        let got = shape_of(&[
            ("/data/b", dir("b")),
            ("/data/b", file("f1")),
            ("/data/b/x", dir("x")),
            ("/data/b/x", file("f2")),
            ("/data/b", file("f3")),
        ]);
        assert_eq!(
            got,
            ["+data", "+b", "f1", "+x", "f2", "-", "f3", "-", "-"].map(String::from)
        );
    }

    #[test]
    fn two_backup_paths_share_their_common_directories() {
        let got = shape_of(&[
            ("/a/one", dir("one")),
            ("/a/one", file("f")),
            ("/a/two", dir("two")),
            ("/b", dir("b")),
        ]);
        assert_eq!(
            got,
            ["+a", "+one", "f", "-", "+two", "-", "-", "+b", "-"].map(String::from)
        );
    }
}
