//! The IDX header: element type and dimensions, validated with checked arithmetic.

use std::fmt;

use crate::error::BadFileKind;

/// An IDX element type, with its type code (the third byte of the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElemType {
    /// `0x08`, unsigned byte.
    U8,
    /// `0x09`, signed byte.
    I8,
    /// `0x0B`, 16-bit signed integer, big-endian.
    I16,
    /// `0x0C`, 32-bit signed integer, big-endian.
    I32,
    /// `0x0D`, 32-bit IEEE float, big-endian.
    F32,
    /// `0x0E`, 64-bit IEEE float, big-endian.
    F64,
}

impl ElemType {
    /// Every element type, in type-code order.
    pub const ALL: [ElemType; 6] = [
        ElemType::U8,
        ElemType::I8,
        ElemType::I16,
        ElemType::I32,
        ElemType::F32,
        ElemType::F64,
    ];

    /// The type code byte.
    ///
    /// ```
    /// use vae_data::idx::ElemType;
    /// assert_eq!(ElemType::F32.code(), 0x0D);
    /// assert_eq!(ElemType::from_code(0x0B), Some(ElemType::I16));
    /// assert_eq!(ElemType::from_code(0x0A), None);
    /// ```
    pub fn code(self) -> u8 {
        match self {
            ElemType::U8 => 0x08,
            ElemType::I8 => 0x09,
            ElemType::I16 => 0x0B,
            ElemType::I32 => 0x0C,
            ElemType::F32 => 0x0D,
            ElemType::F64 => 0x0E,
        }
    }

    /// The element type of a type code, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        ElemType::ALL.into_iter().find(|e| e.code() == code)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElemType::U8 | ElemType::I8 => 1,
            ElemType::I16 => 2,
            ElemType::I32 | ElemType::F32 => 4,
            ElemType::F64 => 8,
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElemType::U8 => "u8",
            ElemType::I8 => "i8",
            ElemType::I16 => "i16",
            ElemType::I32 => "i32",
            ElemType::F32 => "f32",
            ElemType::F64 => "f64",
        })
    }
}

/// A validated IDX header. Building one guarantees that the element count and the payload
/// size in bytes fit in `u64` and `usize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxHeader {
    elem: ElemType,
    dims: Vec<usize>,
    count: usize,
    payload_bytes: u64,
}

impl IdxHeader {
    /// A header for `elem` elements of shape `dims`.
    ///
    /// # Errors
    /// [`BadFileKind::BadRank`] for rank 0 or above 255; [`BadFileKind::DimsOverflow`] if a
    /// dimension exceeds `u32` or the element count or byte size overflows.
    pub fn new(elem: ElemType, dims: &[u64]) -> Result<Self, BadFileKind> {
        let rank = dims.len();
        if rank == 0 || rank > 255 {
            return Err(BadFileKind::BadRank {
                rank: rank.min(255) as u8,
            });
        }
        let overflow = || BadFileKind::DimsOverflow {
            dims: dims.to_vec(),
        };
        if dims.iter().any(|&d| d > u32::MAX as u64) {
            return Err(overflow());
        }
        let count = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(overflow)?;
        let payload_bytes = count.checked_mul(elem.size() as u64).ok_or_else(overflow)?;
        let count = usize::try_from(count).map_err(|_| overflow())?;
        usize::try_from(payload_bytes).map_err(|_| overflow())?;
        let dims = dims.iter().map(|&d| d as usize).collect();
        Ok(IdxHeader {
            elem,
            dims,
            count,
            payload_bytes,
        })
    }

    /// The element type.
    pub fn elem_type(&self) -> ElemType {
        self.elem
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Number of elements (product of the dimensions).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Header length in bytes: `4 + 4 × rank`.
    pub fn header_len(&self) -> u64 {
        4 + 4 * self.dims.len() as u64
    }

    /// Payload length in bytes: `count × element size`.
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes
    }

    /// Total (decompressed) file length the header declares.
    pub fn total_len(&self) -> u64 {
        // Cannot overflow: payload_bytes fits usize and the header is at most 1024 bytes;
        // saturate anyway so a 32-bit edge case reports a huge length, not a wrap.
        self.header_len().saturating_add(self.payload_bytes)
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header_len() as usize);
        out.extend_from_slice(&[0, 0, self.elem.code(), self.dims.len() as u8]);
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_arithmetic_is_checked() {
        let h = IdxHeader::new(ElemType::F64, &[3, 4]).unwrap();
        assert_eq!((h.count(), h.payload_bytes(), h.header_len()), (12, 96, 12));
        assert_eq!(h.to_bytes(), vec![0, 0, 0x0E, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
        let big = u32::MAX as u64;
        assert!(matches!(
            IdxHeader::new(ElemType::F64, &[big, big, big]),
            Err(BadFileKind::DimsOverflow { .. })
        ));
        assert!(matches!(
            IdxHeader::new(ElemType::U8, &[]),
            Err(BadFileKind::BadRank { rank: 0 })
        ));
        // Zero-sized arrays are valid.
        assert_eq!(IdxHeader::new(ElemType::I32, &[0, big]).unwrap().count(), 0);
    }
}
