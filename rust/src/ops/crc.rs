//! CRC-64/XZ, the checksum OSS states for whole objects (`x-oss-hash-crc64ecma`).

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

#[cfg(test)]
mod tests {
    use super::*;

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
