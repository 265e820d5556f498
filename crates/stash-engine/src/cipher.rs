//! restic's encryption (IV ‖ AES-256-CTR ‖ Poly1305-AES under the repository's master key), for
//! the two places the engine reads and writes below `rustic_core`'s API: lock files, and pack
//! ranges that restore decrypts itself. The primitives are the `aes256ctr_poly1305aes` crate's,
//! the one `rustic_core` uses.

use std::num::NonZeroU32;

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::{Aead, AeadInPlace, Nonce, Tag};
use rand::Rng;

pub(crate) const IV_LEN: usize = 16;
pub(crate) const MAC_LEN: usize = 16;

#[derive(Clone)]
pub(crate) struct RepoCipher(Aes256CtrPoly1305Aes);

impl RepoCipher {
    pub(crate) fn new(master: &rustic_core::repofile::MasterKey) -> Self {
        // restic's key layout: AES key, then Poly1305's k and r.
        let mut key = aes256ctr_poly1305aes::Key::default();
        key[0..32].copy_from_slice(&master.encrypt);
        key[32..48].copy_from_slice(&master.mac.k);
        key[48..64].copy_from_slice(&master.mac.r);
        Self(Aes256CtrPoly1305Aes::new(&key))
    }

    pub(crate) fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = Nonce::<Aes256CtrPoly1305Aes>::default();
        rand::rng().fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(
            self.0
                .encrypt(&nonce, plain)
                .expect("encryption of an in-memory buffer cannot fail"),
        );
        out
    }

    /// [`Self::seal`] without allocating: `body` is encrypted in place under a fresh IV; the IV
    /// and the MAC, which go before and after it, are returned.
    pub(crate) fn seal_in_place(&self, body: &mut [u8]) -> ([u8; IV_LEN], [u8; MAC_LEN]) {
        let mut nonce = Nonce::<Aes256CtrPoly1305Aes>::default();
        rand::rng().fill_bytes(&mut nonce);
        let tag = self
            .0
            .encrypt_in_place_detached(&nonce, b"", body)
            .expect("encryption of an in-memory buffer cannot fail");
        (nonce.into(), tag.into())
    }

    /// Opens what [`Self::seal_in_place`] sealed into `out`, whose allocation is reused.
    pub(crate) fn open_into(
        &self,
        iv: &[u8; IV_LEN],
        body: &[u8],
        mac: &[u8; MAC_LEN],
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        out.clear();
        out.extend_from_slice(body);
        self.0
            .decrypt_in_place_detached(
                Nonce::<Aes256CtrPoly1305Aes>::from_slice(iv),
                b"",
                out,
                Tag::<Aes256CtrPoly1305Aes>::from_slice(mac),
            )
            .map_err(
                |_| "the data fails its MAC check; it is corrupt or was written with another key",
            )
    }

    pub(crate) fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, &'static str> {
        if sealed.len() < IV_LEN + MAC_LEN {
            return Err("the data is shorter than its IV and MAC; it is truncated or corrupt");
        }
        self.0
            .decrypt(
                Nonce::<Aes256CtrPoly1305Aes>::from_slice(&sealed[..IV_LEN]),
                &sealed[IV_LEN..],
            )
            .map_err(
                |_| "the data fails its MAC check; it is corrupt or was written with another key",
            )
    }

    /// Like [`Self::seal`] with the IV taken from `seed`: only for data that is a pure function
    /// of `seed`'s source, so one IV never seals two different plaintexts.
    pub(crate) fn seal_with_nonce(&self, plain: &[u8], seed: &[u8; 32]) -> Vec<u8> {
        let nonce = Nonce::<Aes256CtrPoly1305Aes>::from_slice(&seed[..IV_LEN]);
        let mut out = nonce.to_vec();
        out.extend(
            self.0
                .encrypt(nonce, plain)
                .expect("encryption of an in-memory buffer cannot fail"),
        );
        out
    }

    /// An unpacked file (a lock, an index): repository format 2 may compress it, marked by a
    /// leading 2; plain JSON starts with `{` (or `[`, restic's pre-0.2 index).
    pub(crate) fn open_file(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        let plain = self.open(sealed).ok()?;
        match plain.first() {
            Some(b'{' | b'[') => Some(plain),
            Some(2) => zstd::decode_all(&plain[1..]).ok(),
            _ => None,
        }
    }

    /// A blob from a pack: compressed when the index gives an uncompressed length. `zstd` is the
    /// caller's own decompression context: reusing it and decompressing straight into a buffer
    /// of the indexed size saves a context and several reallocations per blob.
    pub(crate) fn open_blob(
        &self,
        sealed: &[u8],
        uncompressed_length: Option<NonZeroU32>,
        zstd: Option<&mut zstd::bulk::Decompressor<'static>>,
    ) -> Result<Vec<u8>, String> {
        let plain = self
            .open(sealed)
            .map_err(|reason| format!("the blob: {reason}"))?;
        let Some(length) = uncompressed_length else {
            return Ok(plain);
        };
        let data = match zstd {
            Some(zstd) => zstd.decompress(&plain, length.get() as usize),
            None => zstd::decode_all(&*plain),
        }
        .map_err(|err| format!("cannot decompress the blob: {err}"))?;
        if data.len() != length.get() as usize {
            return Err(format!(
                "the blob decompresses to {} bytes, the index says {length}",
                data.len()
            ));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::RepoCipher;

    fn cipher() -> RepoCipher {
        RepoCipher::new(&rustic_core::repofile::MasterKey::new())
    }

    #[test]
    fn sealed_data_opens_with_the_same_key_only() {
        let (a, b) = (cipher(), cipher());
        let sealed = a.seal(b"{\"time\":\"now\"}");
        assert_eq!(
            a.open_file(&sealed).as_deref(),
            Some(&b"{\"time\":\"now\"}"[..])
        );
        assert!(b.open(&sealed).is_err(), "another key fails the MAC");
        assert!(a.open(&sealed[..20]).is_err(), "truncated data is refused");
    }

    #[test]
    fn sealing_in_place_gives_what_open_reads_and_opens_into_a_reused_buffer() {
        let a = cipher();
        let plain = b"in place, no allocation per blob";
        let mut body = plain.to_vec();
        let (iv, mac) = a.seal_in_place(&mut body);
        assert_ne!(body, plain);
        let sealed = [&iv[..], &body, &mac].concat();
        assert_eq!(a.open(&sealed).unwrap(), plain);
        let mut out = vec![9u8; 100];
        a.open_into(&iv, &body, &mac, &mut out).unwrap();
        assert_eq!(out, plain);
        body[0] ^= 1;
        assert!(
            a.open_into(&iv, &body, &mac, &mut out).is_err(),
            "a flipped bit fails the MAC"
        );
    }

    #[test]
    fn compressed_files_of_format_2_are_decompressed() {
        let a = cipher();
        let mut plain = vec![2u8];
        plain.extend(zstd::encode_all(&b"{\"pid\":1}"[..], 3).unwrap());
        assert_eq!(
            a.open_file(&a.seal(&plain)).as_deref(),
            Some(&b"{\"pid\":1}"[..])
        );
    }
}
