//! An object's bytes as they are held between the socket and Python.
//!
//! A small body keeps the pieces the HTTP stack read it in: each is a slice of a buffer the
//! socket was read into, so keeping them saves a pass over every byte and an allocation per
//! body. A large body is gathered into a recycled buffer instead ([`crate::buffer_pool`]): its
//! pieces would pin many socket buffers, and fresh memory of that size costs more in page faults
//! than the copy. Either way the one copy Python needs gathers from [`Chunks`].

use bytes::Bytes;

use crate::buffer_pool::{PooledBuf, POOLED_FROM};

/// An immutable sequence of byte pieces, read as one run of bytes.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    pieces: Vec<Bytes>,
    len: usize,
}

impl Chunks {
    /// No bytes.
    pub fn new() -> Self {
        Chunks::default()
    }

    /// Appends a piece (empty ones are dropped).
    pub fn push(&mut self, piece: Bytes) {
        if !piece.is_empty() {
            self.len += piece.len();
            self.pieces.push(piece);
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes `start..end` (clamped to what exists), sharing the pieces' memory.
    pub fn slice(&self, start: usize, end: usize) -> Chunks {
        let end = end.min(self.len);
        let mut out = Chunks::new();
        let mut at = 0;
        for piece in &self.pieces {
            let (lo, hi) = (at, at + piece.len());
            at = hi;
            if hi <= start || lo >= end {
                continue;
            }
            out.push(piece.slice(start.max(lo) - lo..end.min(hi) - lo));
        }
        out
    }

    /// Copies bytes from offset `start` into `dst`, as many as fit and exist; returns how many.
    pub fn copy_to(&self, start: usize, dst: &mut [u8]) -> usize {
        let mut written = 0;
        let mut at = 0;
        for piece in &self.pieces {
            if written == dst.len() {
                break;
            }
            let piece_end = at + piece.len();
            if piece_end > start {
                let from = start.saturating_sub(at);
                let n = (piece.len() - from).min(dst.len() - written);
                dst[written..written + n].copy_from_slice(&piece[from..from + n]);
                written += n;
            }
            at = piece_end;
        }
        written
    }
}

impl From<Bytes> for Chunks {
    fn from(piece: Bytes) -> Self {
        let mut chunks = Chunks::new();
        chunks.push(piece);
        chunks
    }
}

/// A body being received.
#[derive(Debug)]
pub enum Receiving {
    /// Kept as received.
    Pieces(Chunks),
    /// Copied into a recycled buffer.
    Gathered(PooledBuf),
}

impl Receiving {
    /// Ready for a body of about `expected` bytes (0 when unknown).
    pub fn for_length(expected: usize) -> Self {
        if expected >= POOLED_FROM {
            Receiving::Gathered(PooledBuf::with_capacity(expected))
        } else {
            Receiving::Pieces(Chunks::new())
        }
    }

    /// Appends what the socket delivered.
    pub fn push(&mut self, piece: Bytes) {
        match self {
            Receiving::Pieces(chunks) => chunks.push(piece),
            Receiving::Gathered(buf) => buf.extend_from_slice(&piece),
        }
    }

    /// Bytes received so far.
    pub fn len(&self) -> usize {
        match self {
            Receiving::Pieces(chunks) => chunks.len(),
            Receiving::Gathered(buf) => buf.len(),
        }
    }

    /// True when nothing has been received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes received.
    pub fn finish(self) -> Chunks {
        match self {
            Receiving::Pieces(chunks) => chunks,
            Receiving::Gathered(buf) => Chunks::from(buf.freeze()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Chunks {
        fn pieces(&self) -> &[Bytes] {
            &self.pieces
        }

        fn to_bytes(&self) -> Vec<u8> {
            let mut all = vec![0; self.len];
            self.copy_to(0, &mut all);
            all
        }
    }

    fn sample() -> (Chunks, Vec<u8>) {
        let all: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut chunks = Chunks::new();
        let mut at = 0;
        for size in [1, 0, 7, 300, 2, 490, 200] {
            chunks.push(Bytes::copy_from_slice(&all[at..at + size]));
            at += size;
        }
        assert_eq!(at, all.len());
        (chunks, all)
    }

    #[test]
    fn copy_to_gathers_any_window() {
        let (chunks, all) = sample();
        assert_eq!(chunks.len(), 1000);
        assert_eq!(chunks.pieces().len(), 6, "the empty piece is dropped");
        for start in [0, 1, 7, 8, 307, 308, 999, 1000, 1500] {
            for size in [0, 1, 5, 299, 1000] {
                let mut dst = vec![0xEE; size];
                let n = chunks.copy_to(start, &mut dst);
                let expected = &all[start.min(1000)..(start + size).min(1000)];
                assert_eq!(n, expected.len(), "start {start} size {size}");
                assert_eq!(&dst[..n], expected);
            }
        }
    }

    #[test]
    fn slice_shares_and_clamps() {
        let (chunks, all) = sample();
        for (start, end) in [
            (0, 1000),
            (0, 1),
            (5, 310),
            (308, 308),
            (900, 5000),
            (2000, 3000),
        ] {
            let part = chunks.slice(start, end);
            let lo = start.min(1000);
            let expected = &all[lo..end.clamp(lo, 1000)];
            assert_eq!(part.len(), expected.len(), "{start}..{end}");
            assert_eq!(&part.to_bytes()[..], expected);
        }
        let piece = Bytes::from_static(b"abc");
        let one = Chunks::from(piece.clone());
        assert_eq!(
            one.pieces()[0].as_ptr(),
            piece.as_ptr(),
            "one piece is not copied"
        );
        assert!(Chunks::new().to_bytes().is_empty());
    }

    #[test]
    fn small_bodies_keep_their_pieces_large_ones_are_gathered() {
        let piece = Bytes::from(vec![3u8; 1000]);
        let mut small = Receiving::for_length(2000);
        small.push(piece.clone());
        small.push(piece.clone());
        let kept = small.finish();
        assert_eq!(kept.pieces().len(), 2);
        assert_eq!(kept.pieces()[0].as_ptr(), piece.as_ptr(), "not copied");

        let mut large = Receiving::for_length(POOLED_FROM);
        large.push(piece.clone());
        large.push(piece.clone());
        assert_eq!(large.len(), 2000);
        let gathered = large.finish();
        assert_eq!(gathered.pieces().len(), 1);
        assert_eq!(&gathered.to_bytes()[..], &[3u8; 2000][..]);
    }

    proptest::proptest! {
        #[test]
        fn copy_to_matches_contiguous(
            sizes in proptest::collection::vec(0usize..50, 0..20),
            start in 0usize..600,
            size in 0usize..600,
        ) {
            let mut chunks = Chunks::new();
            let mut all = Vec::new();
            for (i, s) in sizes.iter().enumerate() {
                let piece: Vec<u8> = (0..*s).map(|j| (i * 31 + j) as u8).collect();
                all.extend_from_slice(&piece);
                chunks.push(Bytes::from(piece));
            }
            let mut dst = vec![0; size];
            let n = chunks.copy_to(start, &mut dst);
            let lo = start.min(all.len());
            let hi = (start + size).min(all.len());
            proptest::prop_assert_eq!(&dst[..n], &all[lo..hi]);
        }
    }
}
