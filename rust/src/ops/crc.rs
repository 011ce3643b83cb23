//! CRC-64/XZ, the checksum OSS states for whole objects (`x-oss-hash-crc64ecma`), on every
//! answer of a GET — ranged ones included — and of a HEAD.

use crate::error::Error;
use crate::protocol::Target;

/// CRC-64/XZ (ECMA-182 polynomial, reflected), as in `x-oss-hash-crc64ecma`.
pub fn crc64(data: &[u8]) -> u64 {
    let mut digest = crc64_digest();
    digest.update(data);
    digest.finalize()
}

/// A running CRC-64/XZ, for bytes that arrive in pieces.
pub(crate) fn crc64_digest() -> crc_fast::Digest {
    crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Xz)
}

/// The CRC-64/XZ of `a` followed by `b`, from their CRCs and the length of `b`.
pub(crate) fn crc64_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    crc_fast::checksum_combine(crc_fast::CrcAlgorithm::Crc64Xz, crc_a, crc_b, len_b)
}

/// The error for an object whose parts combine to `assembled` where the server states
/// `stated` for the whole.
pub(crate) fn parts_mismatch(target: &Target, (stated, assembled): (u64, u64)) -> Error {
    Error::Protocol {
        target: target.clone(),
        reason: format!(
            "CRC-64 mismatch: the object's parts combine to {assembled}, the server states \
             {stated} for it"
        ),
    }
}

/// The CRC-64 of an object put together from pieces in order, checked against the CRC-64 the
/// server states for the whole once the last piece is in — so a corrupt piece fails the
/// object before its last byte is handed over, whichever piece it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembly {
    size: u64,
    stated: Option<u64>,
    crc: u64,
    covered: u64,
}

impl Assembly {
    /// An object of `size` bytes whose CRC-64 the server states as `stated` (`None`: nothing
    /// to check against).
    pub(crate) fn new(size: u64, stated: Option<u64>) -> Self {
        Assembly {
            size,
            stated,
            crc: 0,
            covered: 0,
        }
    }

    /// Adds the `len` bytes at `offset` whose CRC-64 is `crc`. When they complete the object,
    /// fails with `(stated, assembled)` if the two differ. A piece that does not continue
    /// the ones before makes the check impossible; it is then skipped, never guessed.
    pub(crate) fn add(&mut self, offset: u64, len: u64, crc: u64) -> Result<(), (u64, u64)> {
        if offset != self.covered {
            self.stated = None;
            return Ok(());
        }
        self.crc = crc64_combine(self.crc, crc, len);
        self.covered += len;
        match self.stated {
            Some(stated) if self.covered == self.size && stated != self.crc => {
                Err((stated, self.crc))
            }
            _ => Ok(()),
        }
    }

    /// Bytes assembled so far (from offset 0).
    #[cfg(test)]
    pub(crate) fn covered(&self) -> u64 {
        self.covered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assembly_checks_the_whole_once_its_last_piece_is_in() {
        let data: Vec<u8> = (0..30_000u32).map(|i| (i % 241) as u8).collect();
        let pieces: Vec<(u64, &[u8])> = data
            .chunks(7_000)
            .enumerate()
            .map(|(i, c)| (i as u64 * 7_000, c))
            .collect();
        let whole = crc64(&data);
        let mut good = Assembly::new(data.len() as u64, Some(whole));
        for (offset, piece) in &pieces {
            assert_eq!(good.add(*offset, piece.len() as u64, crc64(piece)), Ok(()));
        }
        assert_eq!(good.covered(), data.len() as u64);

        // A corrupt piece anywhere fails the last one, not before.
        let mut bad = Assembly::new(data.len() as u64, Some(whole));
        let last = pieces.len() - 1;
        for (i, (offset, piece)) in pieces.iter().enumerate() {
            let crc = if i == 1 {
                crc64(piece) ^ 1
            } else {
                crc64(piece)
            };
            let added = bad.add(*offset, piece.len() as u64, crc);
            assert_eq!(added.is_err(), i == last, "piece {i}");
        }

        // Nothing stated, or a gap: nothing checked.
        let mut unstated = Assembly::new(data.len() as u64, None);
        assert_eq!(unstated.add(0, data.len() as u64, 0), Ok(()));
        let mut gap = Assembly::new(data.len() as u64, Some(whole));
        assert_eq!(gap.add(7_000, 23_000, 0), Ok(()));
        assert_eq!(gap.add(0, 7_000, 0), Ok(()));
    }

    #[test]
    fn combined_crcs_are_the_crc_of_the_concatenation() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for cut in [0, 1, 7, 4096, 9_999, 10_000] {
            let (a, b) = data.split_at(cut);
            let combined = crc64_combine(crc64(a), crc64(b), b.len() as u64);
            assert_eq!(combined, crc64(&data), "cut at {cut}");
        }
    }

    #[test]
    fn crc64_is_crc64_xz() {
        // The CRC catalogue's check value for CRC-64/XZ.
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
    }

    /// CRC-64/XZ one bit at a time, straight from its definition.
    fn crc64_by_bits(data: &[u8]) -> u64 {
        let mut crc = u64::MAX;
        for &byte in data {
            crc ^= u64::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xC96C_5795_D787_0F42
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn crc64_of_pieces_is_the_crc_of_the_whole() {
        // Pieces as the socket delivers them: any size, across the SIMD code's block widths.
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let expected = crc64_by_bits(&data);
        assert_eq!(crc64(&data), expected);
        for piece in [
            1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 4095, 16_385, 70_000,
        ] {
            let mut digest = crc64_digest();
            for chunk in data.chunks(piece) {
                digest.update(chunk);
            }
            assert_eq!(digest.finalize(), expected, "pieces of {piece} bytes");
        }
    }
}
