//! The CRCs servers state for whole objects, and the arithmetic on them: CRC-64/XZ (OSS's
//! `x-oss-hash-crc64ecma`, on every answer of a GET — ranged ones included — and of a HEAD),
//! and S3's `x-amz-checksum-*` CRCs (CRC-64/NVME, CRC-32C, CRC-32), stated on whole-object
//! answers only.

use crate::error::Error;
use crate::protocol::Target;

/// A CRC algorithm a server states for objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crc {
    /// ECMA-182 polynomial, reflected: OSS's `x-oss-hash-crc64ecma`.
    Crc64Xz,
    /// S3's `x-amz-checksum-crc64nvme` (AWS's default for new objects since 2025).
    Crc64Nvme,
    /// Castagnoli: S3's `x-amz-checksum-crc32c`.
    Crc32c,
    /// ISO-HDLC (zlib's): S3's `x-amz-checksum-crc32`.
    Crc32,
}

impl Crc {
    fn algorithm(self) -> crc_fast::CrcAlgorithm {
        match self {
            Crc::Crc64Xz => crc_fast::CrcAlgorithm::Crc64Xz,
            Crc::Crc64Nvme => crc_fast::CrcAlgorithm::Crc64Nvme,
            Crc::Crc32c => crc_fast::CrcAlgorithm::Crc32Iscsi,
            Crc::Crc32 => crc_fast::CrcAlgorithm::Crc32IsoHdlc,
        }
    }

    /// Its name, as messages write it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Crc::Crc64Xz => "CRC-64/XZ",
            Crc::Crc64Nvme => "CRC-64/NVME",
            Crc::Crc32c => "CRC-32C",
            Crc::Crc32 => "CRC-32",
        }
    }

    /// Width in bytes (how S3 encodes it: big-endian, then base64).
    pub(crate) fn width(self) -> usize {
        match self {
            Crc::Crc64Xz | Crc::Crc64Nvme => 8,
            Crc::Crc32c | Crc::Crc32 => 4,
        }
    }

    /// The CRC of `data`.
    pub(crate) fn of(self, data: &[u8]) -> u64 {
        let mut digest = self.digest();
        digest.update(data);
        digest.finalize()
    }

    /// A running CRC, for bytes that arrive in pieces.
    pub(crate) fn digest(self) -> crc_fast::Digest {
        crc_fast::Digest::new(self.algorithm())
    }

    /// The CRC of `a` followed by `b`, from their CRCs and the length of `b`.
    pub(crate) fn combine(self, crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
        let field = self.field();
        field.multiply(field.shift_by_bytes(len_b), crc_a) ^ crc_b
    }

    fn field(self) -> &'static Field {
        match self {
            Crc::Crc64Xz => &CRC64_XZ,
            Crc::Crc64Nvme => &CRC64_NVME,
            Crc::Crc32c => &CRC32C,
            Crc::Crc32 => &CRC32,
        }
    }
}

/// Polynomials modulo a reflected CRC polynomial, for combining CRCs: the CRC of `a` then `b`
/// is the CRC of `a` times x^(8 len(b)), plus the CRC of `b` (as zlib's `crc32_combine`).
/// crc-fast's `checksum_combine` finds that power by squaring 64x64 bit matrices on every call:
/// ~125 us for an 8 MiB part, 32 times per 256 MiB object, on the thread that hands the
/// object over. With the powers x^(2^k) computed once, it is one or two 64-step products.
struct Field {
    /// The polynomial, reflected (its x^0 coefficient in the top bit of the width).
    poly: u64,
    /// x^0: the top bit of the width.
    one: u64,
    /// x^(2^k) modulo the polynomial, for every k a 64-bit length in bits can need.
    powers: [u64; 67],
}

const CRC64_XZ: Field = Field::new(0xC96C_5795_D787_0F42, 64);
const CRC64_NVME: Field = Field::new(0x9A6C_9329_AC4B_C9B5, 64);
const CRC32C: Field = Field::new(0x82F6_3B78, 32);
const CRC32: Field = Field::new(0xEDB8_8320, 32);

impl Field {
    const fn new(poly: u64, width: u32) -> Field {
        let one = 1 << (width - 1);
        let mut field = Field {
            poly,
            one,
            powers: [0; 67],
        };
        let mut power = one >> 1; // x^1
        let mut k = 0;
        while k < field.powers.len() {
            field.powers[k] = power;
            power = field.multiply(power, power);
            k += 1;
        }
        field
    }

    /// `a` times `b`, both reflected.
    const fn multiply(&self, a: u64, mut b: u64) -> u64 {
        let mut product = 0;
        let mut bit = self.one;
        while bit != 0 {
            if a & bit != 0 {
                product ^= b;
            }
            bit >>= 1;
            b = if b & 1 != 0 {
                (b >> 1) ^ self.poly
            } else {
                b >> 1
            };
        }
        product
    }

    /// x^(8 len): what a CRC is multiplied by when `len` more bytes follow it.
    fn shift_by_bytes(&self, len: u64) -> u64 {
        let mut shift = self.one;
        let mut rest = len;
        let mut k = 3; // 8 len = len 2^3
        while rest != 0 {
            if rest & 1 != 0 {
                shift = self.multiply(self.powers[k], shift);
            }
            rest >>= 1;
            k += 1;
        }
        shift
    }
}

/// A CRC value and the algorithm it was taken with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checksum {
    pub(crate) crc: Crc,
    pub(crate) value: u64,
}

/// CRC-64/XZ, as in `x-oss-hash-crc64ecma`.
pub fn crc64(data: &[u8]) -> u64 {
    Crc::Crc64Xz.of(data)
}

/// The CRC-64/XZ of `a` followed by `b`, from their CRCs and the length of `b`.
pub fn crc64_combine(crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    Crc::Crc64Xz.combine(crc_a, crc_b, len_b)
}

/// The error for an object whose parts combine to `assembled` where the server states
/// `stated` for the whole.
pub(crate) fn parts_mismatch(target: &Target, (stated, assembled): (Checksum, u64)) -> Error {
    Error::Protocol {
        target: target.clone(),
        reason: format!(
            "{} mismatch: the object's parts combine to {assembled}, the server states {} for it",
            stated.crc.name(),
            stated.value
        ),
    }
}

/// The CRC of an object put together from pieces in order, checked against the CRC the server
/// states for the whole once the last piece is in — so a corrupt piece fails the
/// object before its last byte is handed over, whichever piece it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembly {
    size: u64,
    stated: Option<Checksum>,
    crc: u64,
    covered: u64,
}

impl Assembly {
    /// An object of `size` bytes whose CRC the server states as `stated` (`None`: nothing to
    /// check against).
    pub(crate) fn new(size: u64, stated: Option<Checksum>) -> Self {
        Assembly {
            size,
            stated,
            crc: 0,
            covered: 0,
        }
    }

    /// Adds the `len` bytes at `offset` whose CRC is `crc`. When they complete the object,
    /// fails with `(stated, assembled)` if the two differ. A piece that does not continue the
    /// ones before, or whose CRC is missing or of another algorithm, makes the check
    /// impossible; it is then skipped, never guessed.
    pub(crate) fn add(
        &mut self,
        offset: u64,
        len: u64,
        crc: Option<Checksum>,
    ) -> Result<(), (Checksum, u64)> {
        let Some(stated) = self.stated else {
            return Ok(());
        };
        let crc = match crc {
            Some(c) if c.crc == stated.crc && offset == self.covered => c.value,
            _ => {
                self.stated = None;
                return Ok(());
            }
        };
        self.crc = stated.crc.combine(self.crc, crc, len);
        self.covered += len;
        if self.covered == self.size && stated.value != self.crc {
            return Err((stated, self.crc));
        }
        Ok(())
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

    const ALL: [Crc; 4] = [Crc::Crc64Xz, Crc::Crc64Nvme, Crc::Crc32c, Crc::Crc32];

    fn checksum(crc: Crc, data: &[u8]) -> Option<Checksum> {
        Some(Checksum {
            crc,
            value: crc.of(data),
        })
    }

    #[test]
    fn an_assembly_checks_the_whole_once_its_last_piece_is_in() {
        let data: Vec<u8> = (0..30_000u32).map(|i| (i % 241) as u8).collect();
        let pieces: Vec<(u64, &[u8])> = data
            .chunks(7_000)
            .enumerate()
            .map(|(i, c)| (i as u64 * 7_000, c))
            .collect();
        let size = data.len() as u64;
        for crc in ALL {
            let whole = checksum(crc, &data);
            let mut good = Assembly::new(size, whole);
            for (offset, piece) in &pieces {
                let added = good.add(*offset, piece.len() as u64, checksum(crc, piece));
                assert_eq!(added, Ok(()), "{}", crc.name());
            }
            assert_eq!(good.covered(), size);

            // A corrupt piece anywhere fails the last one, not before.
            let mut bad = Assembly::new(size, whole);
            let last = pieces.len() - 1;
            for (i, (offset, piece)) in pieces.iter().enumerate() {
                let mut part = checksum(crc, piece);
                if let (1, Some(p)) = (i, part.as_mut()) {
                    p.value ^= 1;
                }
                let added = bad.add(*offset, piece.len() as u64, part);
                assert_eq!(added.is_err(), i == last, "{} piece {i}", crc.name());
            }
        }

        // Nothing stated, a gap, a piece without a CRC or with another algorithm's: nothing
        // checked.
        let whole = checksum(Crc::Crc64Xz, &data);
        let mut unstated = Assembly::new(size, None);
        assert_eq!(unstated.add(0, size, checksum(Crc::Crc64Xz, b"x")), Ok(()));
        let mut gap = Assembly::new(size, whole);
        assert_eq!(gap.add(7_000, 23_000, checksum(Crc::Crc64Xz, b"")), Ok(()));
        assert_eq!(gap.add(0, 7_000, checksum(Crc::Crc64Xz, b"")), Ok(()));
        for part in [None, checksum(Crc::Crc64Nvme, &data)] {
            let mut unknown = Assembly::new(size, whole);
            assert_eq!(unknown.add(0, size, part), Ok(()));
        }
    }

    #[test]
    fn combined_crcs_are_the_crc_of_the_concatenation() {
        let data: Vec<u8> = (0..(9 << 20) + 3)
            .map(|i: u32| (i * 31 % 251) as u8)
            .collect();
        for crc in ALL {
            for cut in [
                0,
                1,
                7,
                4096,
                9_999,
                1 << 20,
                data.len() - (8 << 20),
                data.len(),
            ] {
                let (a, b) = data.split_at(cut);
                let combined = crc.combine(crc.of(a), crc.of(b), b.len() as u64);
                assert_eq!(combined, crc.of(&data), "{} cut at {cut}", crc.name());
            }
        }
    }

    #[test]
    fn combining_agrees_with_crc_fast_at_every_length_scale() {
        // Lengths no test can hold in memory (parts of up to 5 GiB, objects of up to 48 TiB):
        // against crc-fast's own, matrix-based combine.
        let lengths = [2, 255, 8 << 20, (5 << 30) + 17, 48 << 40, u64::MAX];
        for crc in ALL {
            for len in lengths {
                let (a, b) = (0x0123_4567_89AB_CDEF_u64, 0xFEDC_BA98_7654_3210_u64);
                let (a, b) = match crc.width() {
                    8 => (a, b),
                    _ => (a & 0xFFFF_FFFF, b & 0xFFFF_FFFF),
                };
                let theirs = crc_fast::checksum_combine(crc.algorithm(), a, b, len);
                assert_eq!(crc.combine(a, b, len), theirs, "{} len {len}", crc.name());
            }
        }
    }

    #[test]
    fn each_algorithm_gives_the_crc_catalogues_check_value() {
        // https://reveng.sourceforge.io/crc-catalogue/ : the CRC of "123456789".
        for (crc, check) in [
            (Crc::Crc64Xz, 0x995D_C9BB_DF19_39FA),
            (Crc::Crc64Nvme, 0xAE8B_1486_0A79_9888),
            (Crc::Crc32c, 0xE306_9283),
            (Crc::Crc32, 0xCBF4_3926),
        ] {
            assert_eq!(crc.of(b"123456789"), check, "{}", crc.name());
            assert_eq!(crc.of(b""), 0, "{}", crc.name());
        }
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
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
            let mut digest = Crc::Crc64Xz.digest();
            for chunk in data.chunks(piece) {
                digest.update(chunk);
            }
            assert_eq!(digest.finalize(), expected, "pieces of {piece} bytes");
        }
    }
}
