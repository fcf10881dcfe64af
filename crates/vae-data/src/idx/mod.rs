//! IDX files: read and write every element type (u8, i8, i16, i32, f32, f64), any rank,
//! big-endian, with gzip handled transparently (detected by the magic bytes `1f 8b`, never
//! by the file name).
//!
//! # Format
//! ```text
//! offset 0: 0x00 0x00          magic
//! offset 2: type code          0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64
//! offset 3: rank r             1..=255
//! offset 4: r × u32 BE         dimensions
//! then:     Π dims elements, big-endian, row-major
//! ```
//!
//! # What is checked before anything is allocated
//! magic, type code, rank, the product of the dimensions (checked, in bytes), the declared
//! size against the real file length (truncated file, trailing bytes; for `.gz`: against
//! the most a deflate stream of that length can hold), and the [`Limits`](crate::Limits) budget. Then the
//! final buffer is allocated once, at its exact size, and the payload is decoded straight
//! into it. A truncated or corrupt gzip stream, and data after the declared end, are
//! errors too.
//!
//! ```
//! use ndarray::{array, ArrayD};
//! use vae_data::idx::{read_idx_bytes, to_idx_bytes, IdxArray};
//! use vae_data::Limits;
//!
//! let a: ArrayD<i16> = array![[1i16, -2, 300], [4, 5, -600]].into_dyn();
//! let bytes = to_idx_bytes(&IdxArray::from(a.clone()));
//! assert_eq!(&bytes[..4], &[0, 0, 0x0B, 2]); // magic, i16, rank 2
//! let back = read_idx_bytes(&bytes, &Limits::default())?;
//! assert_eq!(back.dims(), &[2, 3]);
//! assert_eq!(ArrayD::<i16>::try_from(back)?, a);
//! # Ok::<(), vae_data::DataError>(())
//! ```

mod header;
mod read;
mod write;

pub use header::{ElemType, IdxHeader};
pub(crate) use read::IdxStream;
pub use read::{read_idx, read_idx_bytes, read_idx_header, read_idx_with};
pub use write::{to_idx_bytes, to_idx_gz_bytes, write_idx, write_idx_to};

use ndarray::{ArrayD, IxDyn};

use crate::error::{DataError, Result};

/// The elements of an [`IdxArray`], one vector per element type.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum IdxData {
    /// Type code 0x08.
    U8(Vec<u8>),
    /// Type code 0x09.
    I8(Vec<i8>),
    /// Type code 0x0B.
    I16(Vec<i16>),
    /// Type code 0x0C.
    I32(Vec<i32>),
    /// Type code 0x0D.
    F32(Vec<f32>),
    /// Type code 0x0E.
    F64(Vec<f64>),
}

/// A typed IDX array in memory: dimensions plus row-major elements.
///
/// Convert from and to `ndarray` with `IdxArray::from(ArrayD<T>)` and
/// `ArrayD::<T>::try_from(idx)`, or take any type as `f32` with [`IdxArray::to_f32`].
///
/// ```
/// use vae_data::idx::{IdxArray, IdxData, ElemType};
/// let a = IdxArray::new(vec![2, 2], IdxData::U8(vec![0, 1, 2, 255]))?;
/// assert_eq!(a.elem_type(), ElemType::U8);
/// assert_eq!(a.len(), 4);
/// assert_eq!(a.to_f32()[[1, 1]], 255.0);
/// assert!(IdxArray::new(vec![3], IdxData::U8(vec![1])).is_err()); // 3 ≠ 1 element
/// # Ok::<(), vae_data::DataError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    dims: Vec<usize>,
    data: IdxData,
}

impl IdxData {
    /// The element type.
    pub fn elem_type(&self) -> ElemType {
        match self {
            IdxData::U8(_) => ElemType::U8,
            IdxData::I8(_) => ElemType::I8,
            IdxData::I16(_) => ElemType::I16,
            IdxData::I32(_) => ElemType::I32,
            IdxData::F32(_) => ElemType::F32,
            IdxData::F64(_) => ElemType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            IdxData::U8(v) => v.len(),
            IdxData::I8(v) => v.len(),
            IdxData::I16(v) => v.len(),
            IdxData::I32(v) => v.len(),
            IdxData::F32(v) => v.len(),
            IdxData::F64(v) => v.len(),
        }
    }

    /// `true` if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl IdxArray {
    /// An array of shape `dims` holding `data` (row-major).
    ///
    /// # Errors
    /// [`DataError::InvalidArgument`] if the product of `dims` is not `data.len()`, the rank
    /// is 0 or above 255, or a dimension does not fit in a `u32` (IDX cannot store it).
    pub fn new(dims: Vec<usize>, data: IdxData) -> Result<Self> {
        if dims.is_empty() || dims.len() > 255 {
            return Err(DataError::arg(
                "dims",
                format!("rank {} is outside 1..=255", dims.len()),
            ));
        }
        if let Some(d) = dims.iter().find(|&&d| u32::try_from(d).is_err()) {
            return Err(DataError::arg(
                "dims",
                format!("dimension {d} does not fit in u32"),
            ));
        }
        let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(data.len()) {
            return Err(DataError::arg(
                "data",
                format!("dims {dims:?} need {n:?} elements, got {}", data.len()),
            ));
        }
        Ok(IdxArray { dims, data })
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The elements.
    pub fn data(&self) -> &IdxData {
        &self.data
    }

    /// Dimensions and elements, by value.
    pub fn into_parts(self) -> (Vec<usize>, IdxData) {
        (self.dims, self.data)
    }

    /// The element type.
    pub fn elem_type(&self) -> ElemType {
        self.data.elem_type()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// `true` if there are no elements (some dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Bytes held by the elements in memory.
    pub fn byte_len(&self) -> usize {
        self.len() * self.elem_type().size()
    }

    /// Every element converted to `f32` (values kept, not rescaled; `i32` and `f64` may
    /// round).
    pub fn to_f32(&self) -> ArrayD<f32> {
        let v: Vec<f32> = match &self.data {
            IdxData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::F32(v) => v.clone(),
            IdxData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        };
        ArrayD::from_shape_vec(IxDyn(&self.dims), v).expect("IdxArray keeps len = Π dims")
    }
}

/// An element type IDX can store: `u8`, `i8`, `i16`, `i32`, `f32`, `f64`. Sealed.
pub trait IdxElement: Copy + sealed::Sealed + 'static {
    /// The matching [`ElemType`].
    const ELEM: ElemType;
    /// Wraps a vector in the matching [`IdxData`] variant.
    fn wrap(v: Vec<Self>) -> IdxData;
    /// Takes the vector out if `data` holds this type.
    fn unwrap(data: IdxData) -> std::result::Result<Vec<Self>, IdxData>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! idx_element {
    ($t:ty, $variant:ident) => {
        impl sealed::Sealed for $t {}
        impl IdxElement for $t {
            const ELEM: ElemType = ElemType::$variant;
            fn wrap(v: Vec<Self>) -> IdxData {
                IdxData::$variant(v)
            }
            fn unwrap(data: IdxData) -> std::result::Result<Vec<Self>, IdxData> {
                match data {
                    IdxData::$variant(v) => Ok(v),
                    other => Err(other),
                }
            }
        }
    };
}
idx_element!(u8, U8);
idx_element!(i8, I8);
idx_element!(i16, I16);
idx_element!(i32, I32);
idx_element!(f32, F32);
idx_element!(f64, F64);

impl<T: IdxElement> From<ArrayD<T>> for IdxArray {
    /// # Panics
    /// If the array has rank 0, rank above 255, or a dimension above `u32::MAX` (IDX cannot
    /// store it); use [`IdxArray::new`] to get an error instead.
    #[track_caller]
    fn from(a: ArrayD<T>) -> Self {
        let dims = a.shape().to_vec();
        let v: Vec<T> = a.iter().copied().collect(); // row-major whatever the layout
        IdxArray::new(dims, T::wrap(v)).expect("array shape is storable as IDX")
    }
}

impl<T: IdxElement> TryFrom<IdxArray> for ArrayD<T> {
    type Error = DataError;

    /// # Errors
    /// [`DataError::InvalidArgument`] if the array holds another element type.
    fn try_from(a: IdxArray) -> Result<Self> {
        let have = a.elem_type();
        let v = T::unwrap(a.data).map_err(|_| {
            DataError::arg("array", format!("holds {have} elements, not {}", T::ELEM))
        })?;
        Ok(ArrayD::from_shape_vec(IxDyn(&a.dims), v).expect("IdxArray keeps len = Π dims"))
    }
}
