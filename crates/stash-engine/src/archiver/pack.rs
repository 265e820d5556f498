//! Blobs sealed the way restic's repository format 2 stores them, and the pack files that hold
//! them.
//!
//! A blob is zstd-compressed, then encrypted (IV ‖ AES-256-CTR ‖ Poly1305-AES) with the
//! repository key. A pack is its blobs one after another, then the encrypted header (per blob:
//! type, stored length, uncompressed length, id), then the header's length as a little-endian
//! `u32`; its file name is the SHA-256 of the whole file.

use rustic_core::repofile::BlobType;
use sha2::{Digest, Sha256};

use crate::cipher::{IV_LEN, MAC_LEN, RepoCipher};

/// restic's cap on blobs per pack (`rustic_core` keeps it too).
const MAX_BLOBS_PER_PACK: usize = 10_000;

/// Header entry types of compressed blobs in restic's pack format.
const COMPRESSED_DATA: u8 = 2;
const COMPRESSED_TREE: u8 = 3;

/// Compresses and encrypts blobs. One per thread: the zstd contexts and the buffers are reused
/// from blob to blob (`rustic_core` makes a new context per blob, whose set-up cleared its
/// tables every time, and several blob-sized buffers: freed at every blob, glibc kept them
/// resident in its per-thread arenas, which put the backup's peak RSS above restic's, issue 12).
/// The buffers are written through their spare capacity, so only what a blob uses is touched.
pub(crate) struct Sealer {
    cipher: RepoCipher,
    compressor: zstd::bulk::Compressor<'static>,
    /// The blob being sealed: compressed, then encrypted in place.
    body: Vec<u8>,
    /// Present when the repository asks for every blob to be checked after sealing
    /// (`extra_verify`, on by default): decrypt, decompress, compare, before the blob is packed.
    verifier: Option<Verifier>,
}

struct Verifier {
    decompressor: zstd::bulk::Decompressor<'static>,
    opened: Vec<u8>,
    plain: Vec<u8>,
}

/// A sealed blob as a pack stores it: IV ‖ encrypted compressed data ‖ MAC.
pub(crate) struct Sealed<'a> {
    iv: [u8; IV_LEN],
    body: &'a [u8],
    mac: [u8; MAC_LEN],
}

impl Sealed<'_> {
    pub(crate) fn len(&self) -> usize {
        IV_LEN + self.body.len() + MAC_LEN
    }

    fn parts(&self) -> [&[u8]; 3] {
        [&self.iv, self.body, &self.mac]
    }
}

impl Sealer {
    pub(crate) fn new(cipher: RepoCipher, level: i32, verify: bool) -> std::io::Result<Self> {
        Ok(Self {
            cipher,
            compressor: zstd::bulk::Compressor::new(level)?,
            body: Vec::new(),
            verifier: if verify {
                Some(Verifier {
                    decompressor: zstd::bulk::Decompressor::new()?,
                    opened: Vec::new(),
                    plain: Vec::new(),
                })
            } else {
                None
            },
        })
    }

    /// The blob as stored in a pack, valid until the next call.
    pub(crate) fn seal(&mut self, plain: &[u8]) -> Result<Sealed<'_>, String> {
        self.body.clear();
        self.body
            .reserve(zstd::zstd_safe::compress_bound(plain.len()));
        self.compressor
            .compress_to_buffer(plain, &mut self.body)
            .map_err(|err| format!("zstd could not compress a blob: {err}"))?;
        let (iv, mac) = self.cipher.seal_in_place(&mut self.body);
        if let Some(verifier) = &mut self.verifier {
            verifier.check(&self.cipher, (&iv, &self.body, &mac), plain)?;
        }
        Ok(Sealed {
            iv,
            body: &self.body,
            mac,
        })
    }

    pub(crate) fn cipher(&self) -> &RepoCipher {
        &self.cipher
    }
}

impl Verifier {
    fn check(
        &mut self,
        cipher: &RepoCipher,
        (iv, body, mac): (&[u8; IV_LEN], &[u8], &[u8; MAC_LEN]),
        plain: &[u8],
    ) -> Result<(), String> {
        cipher
            .open_into(iv, body, mac, &mut self.opened)
            .map_err(|err| format!("a sealed blob failed its verification: {err}"))?;
        self.plain.clear();
        // One byte more than expected: a blob that decompresses to more is caught too.
        self.plain.reserve(plain.len() + 1);
        self.decompressor
            .decompress_to_buffer(&self.opened, &mut self.plain)
            .map_err(|err| format!("a sealed blob failed its verification: {err}"))?;
        if self.plain != plain {
            return Err(
                "a sealed blob did not decrypt and decompress to its data (memory corruption?)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// One blob of a pack, as the index lists it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackedBlob {
    pub(crate) id: [u8; 32],
    pub(crate) offset: u32,
    pub(crate) length: u32,
    pub(crate) uncompressed_length: u32,
}

/// A pack written out: its id, its blobs and its size.
#[derive(Debug, Clone)]
pub(crate) struct FinishedPack {
    pub(crate) id: [u8; 32],
    pub(crate) blob_type: BlobType,
    pub(crate) blobs: Vec<PackedBlob>,
    pub(crate) size: u32,
}

/// A pack being filled with blobs of one type.
pub(crate) struct PackBuilder {
    blob_type: BlobType,
    target_size: usize,
    /// Room past the target size for the blob that fills the pack, so the buffer is never
    /// grown: a grown pack buffer doubled, twice a pack resident (issue 12).
    headroom: usize,
    data: Vec<u8>,
    blobs: Vec<PackedBlob>,
}

impl PackBuilder {
    pub(crate) fn new(blob_type: BlobType, target_size: usize) -> Self {
        Self::with_headroom(blob_type, target_size, target_size / 8)
    }

    /// A builder whose buffer holds `target_size` plus a blob of up to `headroom` bytes.
    pub(crate) fn with_headroom(blob_type: BlobType, target_size: usize, headroom: usize) -> Self {
        Self {
            blob_type,
            target_size,
            headroom,
            data: Vec::new(),
            blobs: Vec::new(),
        }
    }

    /// A builder writing into `buffer`, the emptied buffer of a pack already written: one
    /// buffer per pack instead of a fresh pack-sized allocation every time, which glibc kept
    /// resident (issue 12).
    pub(crate) fn reusing(mut self, mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        self.data = buffer;
        self
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Adds a sealed blob; true when the pack should now be written out.
    pub(crate) fn add(
        &mut self,
        id: [u8; 32],
        sealed: &Sealed<'_>,
        uncompressed_length: usize,
    ) -> bool {
        self.add_parts(id, &sealed.parts(), uncompressed_length)
    }

    fn add_parts(&mut self, id: [u8; 32], parts: &[&[u8]], uncompressed_length: usize) -> bool {
        let length: usize = parts.iter().map(|part| part.len()).sum();
        if self.data.capacity() == 0 {
            self.data
                .reserve(self.target_size + self.headroom.max(length));
        }
        self.blobs.push(PackedBlob {
            id,
            offset: u32::try_from(self.data.len()).expect("packs stay below 4 GiB"),
            length: u32::try_from(length).expect("blobs stay below 4 GiB"),
            uncompressed_length: u32::try_from(uncompressed_length)
                .expect("blobs stay below 4 GiB"),
        });
        for part in parts {
            self.data.extend_from_slice(part);
        }
        self.data.len() >= self.target_size || self.blobs.len() >= MAX_BLOBS_PER_PACK
    }

    /// The pack file and what the index must say about it; the builder is empty again.
    pub(crate) fn finish(&mut self, cipher: &RepoCipher) -> (Vec<u8>, FinishedPack) {
        let kind = match self.blob_type {
            BlobType::Tree => COMPRESSED_TREE,
            BlobType::Data => COMPRESSED_DATA,
        };
        let mut header = Vec::with_capacity(self.blobs.len() * 41);
        for blob in &self.blobs {
            header.push(kind);
            header.extend_from_slice(&blob.length.to_le_bytes());
            header.extend_from_slice(&blob.uncompressed_length.to_le_bytes());
            header.extend_from_slice(&blob.id);
        }
        let sealed_header = cipher.seal(&header);
        let mut file = std::mem::take(&mut self.data);
        file.extend_from_slice(&sealed_header);
        file.extend_from_slice(
            &u32::try_from(sealed_header.len())
                .expect("pack headers stay below 4 GiB")
                .to_le_bytes(),
        );
        let pack = FinishedPack {
            id: Sha256::digest(&file).into(),
            blob_type: self.blob_type,
            blobs: std::mem::take(&mut self.blobs),
            size: u32::try_from(file.len()).expect("packs stay below 4 GiB"),
        };
        (file, pack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> RepoCipher {
        RepoCipher::new(&rustic_core::repofile::MasterKey::new())
    }

    #[test]
    fn a_pack_holds_its_blobs_then_a_header_that_opens_to_one_entry_per_blob() {
        let cipher = cipher();
        let mut blob_sealing = Sealer::new(cipher.clone(), 1, true).unwrap();
        let mut pack = PackBuilder::new(BlobType::Data, 1 << 20);
        let blobs: [&[u8]; 2] = [b"first blob", b"second, longer blob of data"];
        for (n, plain) in blobs.iter().enumerate() {
            let sealed = blob_sealing.seal(plain).unwrap();
            assert!(!pack.add([u8::try_from(n).unwrap(); 32], &sealed, plain.len()));
        }
        let (file, finished) = pack.finish(&cipher);
        assert!(pack.is_empty());
        assert_eq!(finished.id, <[u8; 32]>::from(Sha256::digest(&file)));
        assert_eq!(finished.size as usize, file.len());

        let header_len = u32::from_le_bytes(file[file.len() - 4..].try_into().unwrap()) as usize;
        let header = cipher
            .open(&file[file.len() - 4 - header_len..file.len() - 4])
            .unwrap();
        assert_eq!(header.len(), 2 * 41);
        for (n, (entry, blob)) in header.chunks(41).zip(&finished.blobs).enumerate() {
            assert_eq!(entry[0], COMPRESSED_DATA);
            assert_eq!(entry[1..5], blob.length.to_le_bytes());
            assert_eq!(entry[5..9], blob.uncompressed_length.to_le_bytes());
            assert_eq!(entry[9..], [u8::try_from(n).unwrap(); 32]);
            let sealed = &file[blob.offset as usize..(blob.offset + blob.length) as usize];
            let plain = cipher
                .open_blob(
                    sealed,
                    std::num::NonZeroU32::new(blob.uncompressed_length),
                    None,
                )
                .unwrap();
            assert_eq!(plain, blobs[n]);
        }
    }

    #[test]
    fn a_pack_is_full_at_its_target_size() {
        let mut pack = PackBuilder::new(BlobType::Data, 100);
        assert!(!pack.add_parts([0; 32], &[&[0; 60]], 60));
        assert!(pack.add_parts([1; 32], &[&[0; 50], &[0; 10]], 60));
    }
}
