//! restic's content-defined chunking (Rabin fingerprint over a 64-byte window), with the
//! fingerprint's lookup tables computed once per repository and the window read from the chunk
//! itself.
//!
//! `rustic_core` computes the two 256-entry tables by polynomial arithmetic for every file it
//! reads, which was 41% of the CPU of a backup of many small files (`docs/benchmarks.md`,
//! issue 12). The tables depend only on the repository's polynomial, so [`Chunker`] builds them
//! once with `rustic_cdc`'s own functions. `rustic_cdc::Rabin64` also keeps the window in a ring
//! buffer of its own, a store and a bounds check per byte; the chunk being cut is already in one
//! buffer, so [`Fingerprint`] reads the byte leaving the window from there: the same hash
//! sequence, hence the same cut points and blob ids, in fewer instructions per byte (this loop is
//! all of the CPU of re-reading a large changed file whose blobs are known).

use std::io::{self, Read};
use std::sync::mpsc::Receiver;

use rustic_cdc::{Polynom, Rabin64};

/// log2 of the window restic slides its fingerprint over (64 bytes).
const WINDOW_BITS: u32 = 6;
const WINDOW: usize = 1 << WINDOW_BITS;

/// The fingerprint's tables for one polynomial, as `rustic_cdc::Rabin64` computes them.
struct Tables {
    /// What a byte contributes once it has slid out of the window.
    out: [u64; 256],
    /// The reduction of the bits shifted past the polynomial's degree.
    reduce: [u64; 256],
    shift: i32,
}

/// restic's rolling Rabin fingerprint of the chunk being cut, started at the minimum size.
///
/// `rustic_cdc`'s start (`reset_and_prefill_window`, which `rustic_core` uses and restic matches)
/// hashes the 63 bytes before the last one under the minimum size, and its ring buffer then holds
/// a zero where the window's last byte would be: the first byte slid in pushes out nothing, the
/// next 63 push out the byte 65 before them, and from the 64th on the window is the 64 bytes
/// before. [`Fingerprint::leaving`] reproduces exactly that.
struct Fingerprint {
    hash: u64,
}

impl Fingerprint {
    /// The fingerprint after the prefill, for a chunk whose minimum size is `min`.
    fn start(tables: &Tables, data: &[u8], min: usize) -> Self {
        let mut hash = 0u64;
        for &byte in &data[min - WINDOW..min - 1] {
            let top = (hash >> tables.shift) & 255;
            hash = ((hash << 8) | u64::from(byte)) ^ tables.reduce[top as usize];
        }
        Self { hash }
    }

    /// The byte the slide of `data[at]` pushes out of the window.
    fn leaving(data: &[u8], min: usize, at: usize) -> u8 {
        match at - min {
            0 => 0,
            1..WINDOW => data[at - WINDOW - 1],
            _ => data[at - WINDOW],
        }
    }

    /// Slides from `at` until the low bits under `mask` are all zero or `limit` is reached;
    /// returns where it stopped.
    fn scan(
        &mut self,
        tables: &Tables,
        data: &[u8],
        min: usize,
        mut at: usize,
        limit: usize,
        mask: u64,
    ) -> usize {
        let mut hash = self.hash;
        // The first slides, whose leaving byte is irregular.
        while at < limit && at - min < WINDOW && hash & mask != 0 {
            hash = Self::slid(tables, hash, Self::leaving(data, min, at), data[at]);
            at += 1;
        }
        if at >= min + WINDOW {
            let (entering, leaving) = (&data[at..limit], &data[at - WINDOW..limit - WINDOW]);
            for (&byte, &out) in entering.iter().zip(leaving) {
                if hash & mask == 0 {
                    break;
                }
                hash = Self::slid(tables, hash, out, byte);
                at += 1;
            }
        }
        self.hash = hash;
        at
    }

    #[inline]
    fn slid(tables: &Tables, hash: u64, out: u8, byte: u8) -> u64 {
        let hash = hash ^ tables.out[usize::from(out)];
        let top = (hash >> tables.shift) & 255;
        ((hash << 8) | u64::from(byte)) ^ tables.reduce[top as usize]
    }
}

/// The repository's chunking parameters with the fingerprint tables built.
#[derive(Clone)]
pub(crate) struct Chunker {
    tables: std::sync::Arc<Tables>,
    min_size: usize,
    max_size: usize,
    split_mask: u64,
}

impl Chunker {
    /// `None` when the parameters are not ones restic's chunker accepts (the average not a power
    /// of two, or min ≤ average ≤ max violated); such repositories stay with `rustic_core`.
    pub(crate) fn new(
        polynomial: u64,
        average: usize,
        min_size: usize,
        max_size: usize,
    ) -> Option<Self> {
        let valid = average.is_power_of_two()
            && min_size <= average
            && average <= max_size
            && min_size >= WINDOW;
        valid.then(|| Self {
            tables: std::sync::Arc::new(Tables {
                out: Rabin64::calculate_out_table(WINDOW, &polynomial),
                reduce: Rabin64::calculate_mod_table(&polynomial),
                shift: polynomial.degree() - 8,
            }),
            min_size,
            max_size,
            split_mask: average as u64 - 1,
        })
    }

    /// Files shorter than this are one chunk: no fingerprint is computed for them.
    pub(crate) fn min_size(&self) -> usize {
        self.min_size
    }

    /// The largest chunk it cuts.
    pub(crate) fn max_size(&self) -> usize {
        self.max_size
    }

    /// The chunks of `reader`, read in pieces of [`READ_SIZE`] into buffers taken from `spare`
    /// when it has one.
    pub(crate) fn chunks<'a, R: Read>(
        &'a self,
        reader: R,
        spare: &'a Receiver<Vec<u8>>,
    ) -> Chunks<'a, R> {
        Chunks {
            spare,
            tables: &self.tables,
            fingerprint: Fingerprint { hash: 0 },
            min_size: self.min_size,
            max_size: self.max_size,
            split_mask: self.split_mask,
            reader,
            chunk: Vec::new(),
            scanned: 0,
            eof: false,
        }
    }
}

/// Bytes read at a time. Bytes read past a cut are moved to the next chunk, so this bounds
/// that copy; it also bounds how far a chunk's buffer runs ahead of the chunk.
const READ_SIZE: usize = 256 << 10;

/// Cuts a stream into chunks. The chunk being cut is read into a buffer of its own, which is
/// handed out as the chunk once cut: memory follows the chunk's size (1 MiB on average) instead
/// of a buffer of maximal chunks per file worker (issue 12: peak RSS above restic's), and a
/// chunk's bytes are not copied again after they are read.
pub(crate) struct Chunks<'a, R> {
    spare: &'a Receiver<Vec<u8>>,
    tables: &'a Tables,
    fingerprint: Fingerprint,
    min_size: usize,
    max_size: usize,
    split_mask: u64,
    reader: R,
    /// The bytes of the chunk being cut, and possibly some of the next.
    chunk: Vec<u8>,
    /// How far into `chunk` the fingerprint has been slid (0: not started).
    scanned: usize,
    eof: bool,
}

impl<R: Read> Chunks<'_, R> {
    /// Reads up to [`READ_SIZE`] more bytes into `chunk`; sets `eof` when the stream ends.
    fn read_more(&mut self) -> io::Result<()> {
        let len = self.chunk.len();
        self.chunk.resize(len + READ_SIZE, 0);
        let read = loop {
            match self.reader.read(&mut self.chunk[len..]) {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.chunk.truncate(len);
                    return Err(err);
                }
            }
        };
        self.chunk.truncate(len + read);
        self.eof = read == 0;
        Ok(())
    }

    /// Where the chunk starting at `chunk[0]` ends, once enough is buffered to tell. restic's
    /// rule: at least `min_size` bytes; then the fingerprint, started over the window before that
    /// point, is slid byte by byte until its low bits are all zero, the chunk reaches `max_size`
    /// or the data ends. The scan resumes where it stopped when more bytes arrive.
    fn cut_point(&mut self) -> Option<usize> {
        let data = &self.chunk;
        if data.len() < self.min_size {
            return self.eof.then_some(data.len());
        }
        let min = self.min_size;
        if self.scanned == 0 {
            self.fingerprint = Fingerprint::start(self.tables, data, min);
            self.scanned = min;
        }
        let limit = data.len().min(self.max_size);
        let at =
            self.fingerprint
                .scan(self.tables, data, min, self.scanned, limit, self.split_mask);
        self.scanned = at;
        let decided = at < limit || at == self.max_size || self.eof;
        decided.then_some(at)
    }
}

impl<R: Read> Iterator for Chunks<'_, R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let cut = loop {
            if let Some(cut) = self.cut_point() {
                break cut;
            }
            if let Err(err) = self.read_more() {
                return Some(Err(err));
            }
        };
        if cut == 0 {
            return None;
        }
        let mut next = self.spare.try_recv().unwrap_or_default();
        next.clear();
        next.extend_from_slice(&self.chunk[cut..]);
        self.chunk.truncate(cut);
        self.scanned = 0;
        Some(Ok(std::mem::replace(&mut self.chunk, next)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::sync_channel;

    use super::*;

    /// A polynomial of degree 53 as restic picks them.
    const POLY: u64 = 0x003D_A335_8B4D_C173;

    /// restic's default parameters: 512 KiB min, 1 MiB average, 8 MiB max.
    fn restic_default(poly: u64) -> Chunker {
        Chunker::new(poly, 1 << 20, 512 << 10, 8 << 20).unwrap()
    }

    /// The chunks of `reader`, with no spare buffers to reuse.
    fn cut<R: Read>(chunker: &Chunker, reader: R) -> Vec<Vec<u8>> {
        let (_give_back, spare) = sync_channel(0);
        chunker.chunks(reader, &spare).map(Result::unwrap).collect()
    }

    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn chunks_cover_the_input_exactly_within_the_size_bounds() {
        let data = noise(20 << 20, 7);
        let chunker = restic_default(POLY);
        let chunks = cut(&chunker, &data[..]);
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        let (last, rest) = chunks.split_last().unwrap();
        for chunk in rest {
            assert!(
                (512 << 10..=8 << 20).contains(&chunk.len()),
                "{}",
                chunk.len()
            );
        }
        assert!(!last.is_empty());
        assert_eq!(chunks.concat(), data);
    }

    #[test]
    fn the_cut_points_do_not_depend_on_how_the_reader_splits_its_reads() {
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(4093);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let data = noise(12 << 20, 11);
        let chunker = restic_default(POLY);
        assert_eq!(cut(&chunker, &data[..]), cut(&chunker, Dribble(&data)));
    }

    #[test]
    fn an_empty_stream_has_no_chunks_and_a_short_one_is_one_chunk() {
        let chunker = restic_default(POLY);
        assert!(cut(&chunker, &[][..]).is_empty());
        let short = noise(1000, 3);
        let chunks = cut(&chunker, &short[..]);
        assert_eq!(chunks, vec![short]);
    }

    #[test]
    fn reused_buffers_give_the_same_chunks() {
        let data = noise(12 << 20, 5);
        let chunker = restic_default(POLY);
        let (give_back, spare) = sync_channel(8);
        for _ in 0..8 {
            give_back.send(vec![0xAA; 3 << 20]).unwrap();
        }
        let reusing: Vec<Vec<u8>> = chunker
            .chunks(&data[..], &spare)
            .map(Result::unwrap)
            .collect();
        assert!(spare.try_recv().is_err(), "every spare buffer was taken");
        assert_eq!(reusing, cut(&chunker, &data[..]));
    }

    /// The cut points as `rustic_cdc::Rabin64` gives them, slid byte by byte through its ring
    /// buffer (the way `rustic_core` cuts).
    fn reference_cut_lengths(
        poly: u64,
        average: usize,
        min: usize,
        max: usize,
        data: &[u8],
    ) -> Vec<usize> {
        use rustic_cdc::RollingHash64;
        let mut rabin = Rabin64::new_with_polynom(WINDOW_BITS, &poly);
        let mask = average as u64 - 1;
        let mut lengths = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            if rest.len() < min {
                lengths.push(rest.len());
                break;
            }
            rabin.reset_and_prefill_window(&mut rest[min - WINDOW..min].iter().copied());
            let limit = rest.len().min(max);
            let mut at = min;
            while at < limit && rabin.hash & mask != 0 {
                rabin.slide(rest[at]);
                at += 1;
            }
            lengths.push(at);
            rest = &rest[at..];
        }
        lengths
    }

    #[test]
    fn the_cut_points_are_rustic_cdcs_for_small_and_default_parameters() {
        for (average, min, max, len) in [
            (256, 64, 1024, 1 << 20),
            (512, 100, 700, 1 << 20),
            (1 << 20, 512 << 10, 8 << 20, 24 << 20),
        ] {
            let data = noise(len, average as u64);
            let chunker = Chunker::new(POLY, average, min, max).unwrap();
            let lengths: Vec<usize> = cut(&chunker, &data[..]).iter().map(Vec::len).collect();
            assert!(lengths.len() > 10, "{} chunks", lengths.len());
            assert_eq!(
                lengths,
                reference_cut_lengths(POLY, average, min, max, &data)
            );
        }
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(Chunker::new(POLY, 1000, 512, 4096).is_none());
        assert!(Chunker::new(POLY, 1024, 2048, 4096).is_none());
    }
}
