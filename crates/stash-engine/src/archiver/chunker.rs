//! restic's content-defined chunking (Rabin fingerprint over a 64-byte window), with the
//! fingerprint's lookup tables computed once per repository.
//!
//! `rustic_core` computes the two 256-entry tables by polynomial arithmetic for every file it
//! reads, which was 41% of the CPU of a backup of many small files (`docs/benchmarks.md`,
//! issue 12). The tables depend only on the repository's polynomial, so [`Chunker`] keeps one
//! `rustic_cdc::Rabin64` and each file starts from a copy of it: the same fresh state the
//! per-file construction gives, hence the same cut points and the same blob ids.

use std::io::{self, Read};

use rustic_cdc::{Rabin64, RollingHash64};

/// log2 of the window restic slides its fingerprint over (64 bytes).
const WINDOW_BITS: u32 = 6;
const WINDOW: usize = 1 << WINDOW_BITS;

/// The repository's chunking parameters with the fingerprint tables built.
#[derive(Clone)]
pub(crate) struct Chunker {
    fresh: Rabin64,
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
            fresh: Rabin64::new_with_polynom(WINDOW_BITS, &polynomial),
            min_size,
            max_size,
            split_mask: average as u64 - 1,
        })
    }

    /// Files shorter than this are one chunk: no fingerprint is computed for them.
    pub(crate) fn min_size(&self) -> usize {
        self.min_size
    }

    /// The chunks of `reader`, read in large pieces.
    pub(crate) fn chunks<R: Read>(&self, reader: R) -> Chunks<R> {
        Chunks {
            rabin: self.fresh.clone(),
            min_size: self.min_size,
            max_size: self.max_size,
            split_mask: self.split_mask,
            reader,
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
        }
    }
}

/// Cuts a stream into chunks. The buffer holds up to two maximal chunks, so a chunk's bytes are
/// moved at most once before they are cut.
pub(crate) struct Chunks<R> {
    rabin: Rabin64,
    min_size: usize,
    max_size: usize,
    split_mask: u64,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl<R: Read> Chunks<R> {
    /// Reads until a maximal chunk is buffered or the stream ends.
    fn fill(&mut self) -> io::Result<()> {
        if self.eof || self.end - self.start >= self.max_size {
            return Ok(());
        }
        if self.buf.is_empty() {
            self.buf = vec![0; 2 * self.max_size];
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Where the chunk starting at `data[0]` ends. restic's rule: at least `min_size` bytes;
    /// then the fingerprint, restarted over the window before that point, is slid byte by byte
    /// until its low bits are all zero, the chunk reaches `max_size` or the data ends.
    fn cut_point(&mut self, data: &[u8]) -> usize {
        if data.len() < self.min_size {
            return data.len();
        }
        let min = self.min_size;
        self.rabin
            .reset_and_prefill_window(&mut data[min - WINDOW..min].iter().copied());
        let limit = data.len().min(self.max_size);
        let mut at = min;
        while at < limit && self.rabin.hash & self.split_mask != 0 {
            self.rabin.slide(data[at]);
            at += 1;
        }
        at
    }
}

impl<R: Read> Iterator for Chunks<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(err) = self.fill() {
            return Some(Err(err));
        }
        if self.start == self.end {
            return None;
        }
        let (start, end) = (self.start, self.end);
        let buf = std::mem::take(&mut self.buf);
        let cut = self.cut_point(&buf[start..end]);
        let chunk = buf[start..start + cut].to_vec();
        self.buf = buf;
        self.start += cut;
        Some(Ok(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A polynomial of degree 53 as restic picks them.
    const POLY: u64 = 0x003D_A335_8B4D_C173;

    /// restic's default parameters: 512 KiB min, 1 MiB average, 8 MiB max.
    fn restic_default(poly: u64) -> Chunker {
        Chunker::new(poly, 1 << 20, 512 << 10, 8 << 20).unwrap()
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
        let chunks: Vec<Vec<u8>> = chunker.chunks(&data[..]).map(Result::unwrap).collect();
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
        let whole: Vec<usize> = chunker
            .chunks(&data[..])
            .map(|c| c.unwrap().len())
            .collect();
        let dribbled: Vec<usize> = chunker
            .chunks(Dribble(&data))
            .map(|c| c.unwrap().len())
            .collect();
        assert_eq!(whole, dribbled);
    }

    #[test]
    fn an_empty_stream_has_no_chunks_and_a_short_one_is_one_chunk() {
        let chunker = restic_default(POLY);
        assert_eq!(chunker.chunks(&[][..]).count(), 0);
        let short = noise(1000, 3);
        let chunks: Vec<Vec<u8>> = chunker.chunks(&short[..]).map(Result::unwrap).collect();
        assert_eq!(chunks, vec![short]);
    }

    #[test]
    fn invalid_parameters_are_refused() {
        assert!(Chunker::new(POLY, 1000, 512, 4096).is_none());
        assert!(Chunker::new(POLY, 1024, 2048, 4096).is_none());
    }
}
