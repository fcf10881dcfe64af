//! Writing IDX, raw or gzip-compressed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::header::IdxHeader;
use super::{IdxArray, IdxData};
use crate::error::{DataError, Result};

/// Writes `a` as IDX (header, then big-endian elements) to `w`.
///
/// # Errors
/// Whatever `w` returns.
pub fn write_idx_to<W: Write>(mut w: W, a: &IdxArray) -> io::Result<()> {
    let dims: Vec<u64> = a.dims().iter().map(|&d| d as u64).collect();
    let header = IdxHeader::new(a.elem_type(), &dims).expect("IdxArray::new checked the dims");
    w.write_all(&header.to_bytes())?;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    macro_rules! put {
        ($v:expr) => {
            for chunk in $v.chunks(8 * 1024) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_be_bytes());
                }
                w.write_all(&buf)?;
            }
        };
    }
    match a.data() {
        IdxData::U8(v) => w.write_all(v)?,
        IdxData::I8(v) => put!(v),
        IdxData::I16(v) => put!(v),
        IdxData::I32(v) => put!(v),
        IdxData::F32(v) => put!(v),
        IdxData::F64(v) => put!(v),
    }
    w.flush()
}

/// `a` as raw IDX bytes.
///
/// ```
/// use vae_data::idx::{to_idx_bytes, IdxArray, IdxData};
/// let a = IdxArray::new(vec![2], IdxData::I16(vec![1, -1]))?;
/// assert_eq!(to_idx_bytes(&a), vec![0, 0, 0x0B, 1, 0, 0, 0, 2, 0, 1, 0xff, 0xff]);
/// # Ok::<(), vae_data::DataError>(())
/// ```
pub fn to_idx_bytes(a: &IdxArray) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * a.dims().len() + a.byte_len());
    write_idx_to(&mut out, a).expect("writing to a Vec cannot fail");
    out
}

/// `a` as gzip-compressed IDX bytes (default compression level).
pub fn to_idx_gz_bytes(a: &IdxArray) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    write_idx_to(&mut enc, a).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Writes `a` to the file `path`, gzip-compressed if `gz` (the name is not consulted).
///
/// ```
/// use vae_data::idx::{read_idx, write_idx, IdxArray, IdxData};
/// # let tmp = tempfile::tempdir().map_err(|e| vae_data::DataError::Io { path: "tmp".into(), source: e })?;
/// let path = tmp.path().join("x-idx1-double");
/// let a = IdxArray::new(vec![3], IdxData::F64(vec![0.5, -1.0, 1e300]))?;
/// write_idx(&path, &a, true)?;
/// assert_eq!(read_idx(&path)?, a);
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// [`DataError::Io`] naming `path`.
pub fn write_idx(path: impl AsRef<Path>, a: &IdxArray, gz: bool) -> Result<()> {
    let path = path.as_ref();
    let io_err = |e| DataError::io(path, e);
    let file = BufWriter::new(File::create(path).map_err(io_err)?);
    if gz {
        let mut enc = GzEncoder::new(file, Compression::default());
        write_idx_to(&mut enc, a).map_err(io_err)?;
        enc.finish().map_err(io_err)?.flush().map_err(io_err)
    } else {
        write_idx_to(file, a).map_err(io_err)
    }
}
