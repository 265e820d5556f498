//! Index files as restic reads them, below `rustic_core`.
//!
//! restic wrote packs holding both tree and data blobs for years (until 0.12), and trusts each
//! index entry's own blob type. `rustic_core` files every blob of a pack under the type of the
//! pack's first blob, so the trees of such a pack are "not found in index" and the data blobs
//! after a tree are lost to restore. It has no switch for this, so this backend wrapper hands
//! `rustic_core` each mixed pack as two entries, one per blob type, both naming the real pack
//! and its real size: every lookup then finds every blob where the pack really holds it.
//!
//! It also reads restic's pre-0.2 index format (a bare JSON array of packs), which restic 0.14
//! still reads, by wrapping the array as the `packs` of a current index.
//!
//! Index files are encrypted, so a rewritten one is sealed again with the repository key. The
//! nonce is derived from the original file, so the same file always rewrites to the same bytes
//! (the cache and `check`'s cache comparison see one stable file).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use rustic_core::repofile::{IndexFile, IndexPack};
use rustic_core::{BytesList, FileType, Id, ReadBackend, RusticResult, WriteBackend};
use sha2::Digest;

use crate::cipher::RepoCipher;

/// What the rewriting learnt about the repository, for the operations that must know it.
#[derive(Default)]
pub(crate) struct IndexCompat {
    key: OnceLock<RepoCipher>,
    /// Each mixed pack as its index lists it (all blobs, in pack order).
    mixed: Mutex<BTreeMap<Id, IndexPack>>,
    /// Index files found in restic's pre-0.2 format.
    legacy: Mutex<Vec<Id>>,
}

impl std::fmt::Debug for IndexCompat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexCompat").finish_non_exhaustive()
    }
}

impl IndexCompat {
    /// Index files are rewritten once the key is known (after the repository is opened).
    pub(crate) fn set_key(&self, key: &rustic_core::repofile::MasterKey) {
        let _ = self.key.set(RepoCipher::new(key));
    }

    /// The mixed packs seen in the index files read so far.
    pub(crate) fn mixed_packs(&self) -> BTreeMap<Id, IndexPack> {
        self.mixed.lock().expect("mixed pack list poisoned").clone()
    }

    pub(crate) fn legacy_index_files(&self) -> Vec<Id> {
        self.legacy.lock().expect("legacy list poisoned").clone()
    }

    /// The index file `sealed` as `rustic_core` can read it: unchanged unless it has mixed
    /// packs or the legacy format.
    fn rewrite(&self, id: &Id, sealed: bytes::Bytes) -> bytes::Bytes {
        let Some(cipher) = self.key.get() else {
            return sealed;
        };
        let Some(plain) = cipher.open_file(&sealed) else {
            // Not ours to judge: rustic_core reports the corrupt file itself.
            return sealed;
        };
        let (mut index, legacy) = match serde_json::from_slice::<IndexFile>(&plain) {
            Ok(index) => (index, false),
            Err(_) => match serde_json::from_slice::<Vec<IndexPack>>(&plain) {
                Ok(packs) => (
                    IndexFile {
                        packs,
                        ..IndexFile::default()
                    },
                    true,
                ),
                Err(_) => return sealed,
            },
        };
        if legacy {
            tracing::warn!(index = %id, "index file in restic's pre-0.2 format; reading it as restic 0.14 does (restic 0.17 and later refuse it)");
            self.legacy.lock().expect("legacy list poisoned").push(*id);
        }
        let split_packs = self.split(&mut index.packs);
        let split_deleted = self.split(&mut index.packs_to_delete);
        if !legacy && !split_packs && !split_deleted {
            return sealed;
        }
        let Ok(json) = serde_json::to_vec(&index) else {
            return sealed;
        };
        let nonce: [u8; 32] = sha2::Sha256::new()
            .chain_update(b"stash-rs index rewrite")
            .chain_update(&sealed)
            .finalize()
            .into();
        cipher.seal_with_nonce(&json, &nonce).into()
    }

    /// Replaces each mixed pack by one entry per blob type; true when any was found.
    fn split(&self, packs: &mut Vec<IndexPack>) -> bool {
        let mixed = |p: &IndexPack| p.blobs.iter().any(|b| b.tpe != p.blobs[0].tpe);
        if !packs.iter().any(mixed) {
            return false;
        }
        let mut out = Vec::with_capacity(packs.len() + 1);
        for pack in packs.drain(..) {
            if !mixed(&pack) {
                out.push(pack);
                continue;
            }
            let size = Some(pack.pack_size());
            let (trees, data): (Vec<_>, Vec<_>) = pack
                .blobs
                .iter()
                .partition(|b| b.tpe == rustic_core::repofile::BlobType::Tree);
            for blobs in [trees, data] {
                out.push(IndexPack {
                    id: pack.id,
                    blobs,
                    time: pack.time,
                    size,
                });
            }
            self.mixed
                .lock()
                .expect("mixed pack list poisoned")
                .insert(*pack.id, pack);
        }
        *packs = out;
        true
    }
}

/// The repository backend with index files rewritten by [`IndexCompat`].
#[derive(Debug)]
pub(crate) struct IndexCompatBackend {
    inner: Arc<dyn WriteBackend>,
    compat: Arc<IndexCompat>,
}

impl IndexCompatBackend {
    pub(crate) fn wrap(
        inner: Arc<dyn WriteBackend>,
        compat: Arc<IndexCompat>,
    ) -> Arc<dyn WriteBackend> {
        Arc::new(Self { inner, compat })
    }
}

impl ReadBackend for IndexCompatBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.inner.list_with_size(tpe)
    }

    fn list(&self, tpe: FileType) -> RusticResult<Vec<Id>> {
        self.inner.list(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<bytes::Bytes> {
        let data = self.inner.read_full(tpe, id)?;
        if tpe == FileType::Index {
            Ok(self.compat.rewrite(id, data))
        } else {
            Ok(data)
        }
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<bytes::Bytes> {
        self.inner.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.inner.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.inner.warm_up(tpe, id)
    }
}

impl WriteBackend for IndexCompatBackend {
    fn create(&self) -> RusticResult<()> {
        self.inner.create()
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        self.inner.write_bytes(tpe, id, cacheable, content)
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        self.inner.remove(tpe, id, cacheable)
    }
}

#[cfg(test)]
mod tests {
    use super::IndexCompat;
    use rustic_core::repofile::{IndexFile, MasterKey};

    fn compat() -> (IndexCompat, crate::cipher::RepoCipher) {
        let key = MasterKey::new();
        let compat = IndexCompat::default();
        compat.set_key(&key);
        (compat, crate::cipher::RepoCipher::new(&key))
    }

    const MIXED: &str = r#"{"packs":[{"id":"d9de8b0500000000000000000000000000000000000000000000000000000000","blobs":[
        {"id":"1100000000000000000000000000000000000000000000000000000000000000","type":"data","offset":0,"length":50},
        {"id":"2200000000000000000000000000000000000000000000000000000000000000","type":"tree","offset":50,"length":60},
        {"id":"3300000000000000000000000000000000000000000000000000000000000000","type":"data","offset":110,"length":70}]}]}"#;

    #[test]
    fn a_mixed_pack_is_listed_once_per_blob_type_with_its_real_size() {
        let (compat, cipher) = compat();
        let sealed = cipher.seal(MIXED.as_bytes());
        let id = rustic_core::Id::default();
        let rewritten = compat.rewrite(&id, sealed.clone().into());
        assert_eq!(
            rewritten,
            compat.rewrite(&id, sealed.into()),
            "the same file rewrites to the same bytes"
        );
        let index: IndexFile =
            serde_json::from_slice(&cipher.open_file(&rewritten).unwrap()).unwrap();
        assert_eq!(index.packs.len(), 2);
        assert!(
            index
                .packs
                .iter()
                .all(|p| p.blobs.iter().all(|b| b.tpe == p.blobs[0].tpe))
        );
        let full = 50 + 60 + 70 + 3 * 37 + 32 + 4;
        assert!(index.packs.iter().all(|p| p.size == Some(full)));
        assert_eq!(compat.mixed_packs().len(), 1);
    }

    #[test]
    fn an_index_in_the_pre_0_2_array_format_is_read_as_its_packs() {
        let (compat, cipher) = compat();
        let legacy = r#"[{"id":"d9de8b0500000000000000000000000000000000000000000000000000000000","blobs":[
            {"id":"1100000000000000000000000000000000000000000000000000000000000000","type":"data","offset":0,"length":50}]}]"#;
        let rewritten = compat.rewrite(
            &rustic_core::Id::default(),
            cipher.seal(legacy.as_bytes()).into(),
        );
        let index: IndexFile =
            serde_json::from_slice(&cipher.open_file(&rewritten).unwrap()).unwrap();
        assert_eq!(index.packs.len(), 1);
        assert_eq!(compat.legacy_index_files().len(), 1);
    }

    #[test]
    fn an_ordinary_index_is_passed_through_untouched() {
        let (compat, cipher) = compat();
        let plain = r#"{"packs":[]}"#;
        let sealed: bytes::Bytes = cipher.seal(plain.as_bytes()).into();
        assert_eq!(
            compat.rewrite(&rustic_core::Id::default(), sealed.clone()),
            sealed
        );
    }
}
