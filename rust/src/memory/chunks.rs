//! An object's bytes as they are held between the socket and Python.
//!
//! A small body keeps the pieces the HTTP stack read it in: each is a slice of a buffer the
//! socket was read into, so keeping them saves a pass over every byte and an allocation per
//! body. A large body is gathered into a recycled buffer instead ([`crate::memory::buffer_pool`]): its
//! pieces would pin many socket buffers, and fresh memory of that size costs more in page faults
//! than the copy. Either way the one copy Python needs gathers from [`Chunks`] — unless the
//! caller lent memory for the whole body ([`crate::memory::lent`]): then the body is written there and
//! handed back as it is.
//!
//! A kept piece can pin the rest of the HTTP stack's read buffer (up to ~400 KiB), more than
//! its budget reservation counts: the pipeline's lookahead (results not yet taken) bounds how
//! many such pieces exist (100 KiB objects: RSS 26 MiB over the baseline in the full run).

use bytes::Bytes;

use crate::memory::buffer_pool::PooledBuf;
use crate::memory::lent::{Lent, Owner};
use crate::memory::LARGE_BODY;

/// An immutable sequence of byte pieces, read as one run of bytes.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    pieces: Vec<Bytes>,
    len: usize,
    /// Set when the bytes are exactly the whole of some lent memory.
    lent: Option<Owner>,
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

    /// The owner of the lent memory these bytes fill entirely, if they are that.
    pub fn lent(&self) -> Option<&Owner> {
        self.lent.as_ref()
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
pub(crate) enum Receiving {
    /// Kept as received.
    Pieces(Chunks),
    /// Copied into a recycled buffer.
    Gathered(PooledBuf),
    /// Copied into lent memory.
    Lent {
        /// Where the body goes.
        memory: Lent,
        /// Bytes written so far.
        written: usize,
    },
}

impl Receiving {
    /// Ready for a body of about `expected` bytes (0 when unknown).
    pub(crate) fn for_length(expected: usize) -> Self {
        if expected >= LARGE_BODY {
            Receiving::Gathered(PooledBuf::with_capacity(expected))
        } else {
            Receiving::Pieces(Chunks::new())
        }
    }

    /// Ready for a body to be written into `memory`.
    pub(crate) fn into_lent(mut memory: Lent) -> Self {
        // A small body's memory comes from the allocator's heap, faulted in long ago.
        if memory.len() >= LARGE_BODY {
            memory.populate();
        }
        Receiving::Lent { memory, written: 0 }
    }

    /// Appends what the socket delivered.
    pub(crate) fn push(&mut self, piece: Bytes) {
        match self {
            Receiving::Pieces(chunks) => chunks.push(piece),
            Receiving::Gathered(buf) => buf.extend_from_slice(&piece),
            Receiving::Lent { memory, written } => {
                if memory.write(*written, &piece) {
                    *written += piece.len();
                } else {
                    self.spill(&piece);
                }
            }
        }
    }

    /// More arrived than was lent (the object grew since it was listed): carries on in a
    /// buffer of our own, the lent memory only read from here on.
    fn spill(&mut self, piece: &[u8]) {
        let Receiving::Lent { memory, written } =
            std::mem::replace(self, Receiving::Pieces(Chunks::new()))
        else {
            return;
        };
        let (so_far, _) = memory.into_bytes(written);
        let mut buf = PooledBuf::with_capacity(so_far.len() + piece.len());
        buf.extend_from_slice(&so_far);
        buf.extend_from_slice(piece);
        *self = Receiving::Gathered(buf);
    }

    /// Bytes received so far.
    pub(crate) fn len(&self) -> usize {
        match self {
            Receiving::Pieces(chunks) => chunks.len(),
            Receiving::Gathered(buf) => buf.len(),
            Receiving::Lent { written, .. } => *written,
        }
    }

    /// The bytes received.
    pub(crate) fn finish(self) -> Chunks {
        match self {
            Receiving::Pieces(chunks) => chunks,
            Receiving::Gathered(buf) => Chunks::from(buf.freeze()),
            Receiving::Lent { memory, written } => {
                let whole = written == memory.len();
                let (bytes, owner) = memory.into_bytes(written);
                let mut chunks = Chunks::from(bytes);
                if whole {
                    chunks.lent = Some(owner);
                }
                chunks
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

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

        let mut large = Receiving::for_length(LARGE_BODY);
        large.push(piece.clone());
        large.push(piece.clone());
        assert_eq!(large.len(), 2000);
        let gathered = large.finish();
        assert_eq!(gathered.pieces().len(), 1);
        assert_eq!(&gathered.to_bytes()[..], &[3u8; 2000][..]);
    }

    fn lend(len: usize) -> (Lent, Arc<Mutex<Vec<u8>>>) {
        let memory = Arc::new(Mutex::new(vec![0u8; len]));
        let ptr = memory.lock().unwrap().as_mut_ptr();
        // SAFETY: the vector is never resized and only written through the `Lent`.
        (unsafe { Lent::new(ptr, len, memory.clone()) }, memory)
    }

    #[test]
    fn a_body_filling_lent_memory_comes_back_as_it() {
        let (lent, memory) = lend(6);
        let mut body = Receiving::into_lent(lent);
        body.push(Bytes::from_static(b"abc"));
        body.push(Bytes::from_static(b"def"));
        assert_eq!(body.len(), 6);
        let done = body.finish();
        assert_eq!(&done.to_bytes()[..], b"abcdef");
        assert_eq!(&memory.lock().unwrap()[..], b"abcdef", "written in place");
        let owner = done.lent().expect("marked as the lent memory").clone();
        assert!(owner.downcast::<Mutex<Vec<u8>>>().is_ok());
        assert!(
            done.slice(1, 6).lent().is_none(),
            "a slice is not the whole"
        );
    }

    #[test]
    fn a_body_short_of_or_beyond_lent_memory_is_not_handed_back_as_it() {
        let (lent, _memory) = lend(6);
        let mut short = Receiving::into_lent(lent);
        short.push(Bytes::from_static(b"abc"));
        let short = short.finish();
        assert_eq!(&short.to_bytes()[..], b"abc");
        assert!(short.lent().is_none());

        let (lent, memory) = lend(4);
        let mut long = Receiving::into_lent(lent);
        long.push(Bytes::from_static(b"abc"));
        long.push(Bytes::from_static(b"defg"));
        assert_eq!(long.len(), 7);
        let long = long.finish();
        assert_eq!(&long.to_bytes()[..], b"abcdefg");
        assert!(long.lent().is_none());
        assert_eq!(Arc::strong_count(&memory), 1, "the lent memory is let go");
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
