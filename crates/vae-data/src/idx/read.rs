//! Reading IDX: validate the header against the input length and the [`Limits`], then
//! decode the payload in fixed-size chunks straight into the caller's final buffer.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::header::{ElemType, IdxHeader};
use super::{IdxArray, IdxData};
use crate::error::{BadFileKind, DataError, Result};
use crate::limits::Limits;

/// The name errors give an in-memory buffer.
pub(crate) const MEMORY_PATH: &str = "<memory>";

/// Deflate cannot expand data by more than 1032:1 (a 258-byte match in 2 bits), so a gzip
/// file of `n` bytes decodes to at most `1032 n` bytes.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// Payload bytes decoded per chunk (a multiple of every element size).
const CHUNK: usize = 64 * 1024;

/// An IDX file whose header has been read and checked against the input length; the
/// payload is next.
pub(crate) struct IdxStream<'a> {
    reader: Source<'a>,
    path: PathBuf,
    gz: bool,
    header: IdxHeader,
}

impl IdxStream<'static> {
    /// Opens `path`, sniffs gzip by its magic bytes, reads and checks the header.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let input_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        let mut magic = [0u8; 2];
        let n = read_full(&mut file, &mut magic).map_err(|e| DataError::io(path, e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| DataError::io(path, e))?;
        let gz = n == 2 && magic == [0x1f, 0x8b];
        let reader = if gz {
            Source::Reader(Box::new(flate2::read::MultiGzDecoder::new(file)))
        } else {
            Source::Reader(Box::new(file))
        };
        IdxStream::start(reader, input_len, path.to_path_buf(), gz)
    }
}

impl<'a> IdxStream<'a> {
    /// Same as [`IdxStream::open`] for bytes in memory (errors name `<memory>`).
    pub(crate) fn from_bytes(bytes: &'a [u8]) -> Result<Self> {
        let gz = bytes.starts_with(&[0x1f, 0x8b]);
        let reader = if gz {
            Source::Reader(Box::new(flate2::bufread::MultiGzDecoder::new(bytes)))
        } else {
            Source::Slice(bytes)
        };
        IdxStream::start(reader, bytes.len() as u64, PathBuf::from(MEMORY_PATH), gz)
    }

    fn start(reader: Source<'a>, input_len: u64, path: PathBuf, gz: bool) -> Result<Self> {
        let mut s = IdxStream {
            reader,
            path,
            gz,
            // Placeholder until the real header is read.
            header: IdxHeader::new(ElemType::U8, &[0]).expect("valid"),
        };
        s.header = s.read_header()?;
        let total = s.header.total_len();
        if gz {
            let max_possible = input_len.saturating_mul(MAX_DEFLATE_RATIO);
            if total > max_possible {
                return Err(s.bad(
                    None,
                    BadFileKind::ImpossibleSize {
                        declared: total,
                        max_possible,
                    },
                ));
            }
        } else if total > input_len {
            return Err(s.bad(
                Some(input_len),
                BadFileKind::Truncated {
                    expected: total,
                    actual: input_len,
                },
            ));
        } else if total < input_len {
            return Err(s.bad(
                Some(total),
                BadFileKind::TrailingBytes {
                    expected: total,
                    actual: input_len,
                },
            ));
        }
        Ok(s)
    }

    fn read_header(&mut self) -> Result<IdxHeader> {
        let mut head = [0u8; 4];
        let n = read_full(&mut self.reader, &mut head).map_err(|e| self.read_err(e))?;
        if head[..n.min(2)].iter().any(|&b| b != 0) {
            let found = head[..n].to_vec();
            return Err(self.bad(Some(0), BadFileKind::BadMagic { found }));
        }
        let elem = if n >= 3 {
            ElemType::from_code(head[2])
        } else {
            None
        };
        if n >= 3 && elem.is_none() {
            let code = head[2];
            return Err(self.bad(Some(2), BadFileKind::UnknownTypeCode { code }));
        }
        if n < 4 {
            let kind = BadFileKind::Truncated {
                expected: 4,
                actual: n as u64,
            };
            return Err(self.bad(Some(n as u64), kind));
        }
        let elem = elem.expect("checked above");
        let rank = head[3] as usize;
        if rank == 0 {
            return Err(self.bad(Some(3), BadFileKind::BadRank { rank: 0 }));
        }
        let mut raw = [0u8; 4 * 255];
        let raw = &mut raw[..4 * rank];
        let n = read_full(&mut self.reader, raw).map_err(|e| self.read_err(e))?;
        if n < raw.len() {
            let (expected, actual) = (4 + raw.len() as u64, 4 + n as u64);
            return Err(self.bad(Some(actual), BadFileKind::Truncated { expected, actual }));
        }
        let mut dims = [0u64; 255];
        for (d, b) in dims.iter_mut().zip(raw.chunks_exact(4)) {
            *d = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64;
        }
        IdxHeader::new(elem, &dims[..rank]).map_err(|k| self.bad(Some(4), k))
    }

    /// The validated header.
    pub(crate) fn header(&self) -> &IdxHeader {
        &self.header
    }

    /// The file (or `<memory>`).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that decoding into elements of `out_elem_bytes` bytes each fits `limits`.
    pub(crate) fn check_alloc(&self, limits: &Limits, out_elem_bytes: u64) -> Result<()> {
        let requested = (self.header.count() as u64).saturating_mul(out_elem_bytes);
        limits.check(&self.path, requested)
    }

    /// Feeds the payload to `f` in chunks of whole elements, then checks that the input
    /// ends exactly there (and, for gzip, that the stream and its checksum are intact).
    pub(crate) fn for_each_chunk(mut self, mut f: impl FnMut(&[u8])) -> Result<()> {
        let total = self.header.payload_bytes();
        let header_len = self.header.header_len();
        if let Source::Slice(rest) = self.reader {
            // Raw bytes in memory: the length was checked in `start`, so hand out the
            // payload as it is, without a copy.
            debug_assert_eq!(rest.len() as u64, total);
            rest.chunks(CHUNK).for_each(f);
            return Ok(());
        }
        // Never larger than the payload, which was checked against the input length.
        let mut buf = vec![0u8; CHUNK.min(total as usize)];
        let mut done = 0u64;
        while done < total {
            let want = (total - done).min(buf.len() as u64) as usize;
            let got =
                read_full(&mut self.reader, &mut buf[..want]).map_err(|e| self.read_err(e))?;
            if got < want {
                let actual = header_len + done + got as u64;
                let kind = BadFileKind::Truncated {
                    expected: self.header.total_len(),
                    actual,
                };
                return Err(self.bad(Some(actual), kind));
            }
            f(&buf[..want]);
            done += want as u64;
        }
        let mut probe = [0u8; 64];
        let extra = read_full(&mut self.reader, &mut probe).map_err(|e| self.read_err(e))?;
        if extra > 0 {
            let expected = self.header.total_len();
            let kind = BadFileKind::TrailingBytes {
                expected,
                actual: expected + extra as u64,
            };
            return Err(self.bad(Some(expected), kind));
        }
        Ok(())
    }

    fn bad(&self, offset: Option<u64>, kind: BadFileKind) -> DataError {
        DataError::bad_file(&self.path, offset, kind)
    }

    /// Decoder errors of a gzip stream are bad-file errors; anything else is I/O.
    fn read_err(&self, e: io::Error) -> DataError {
        match e.kind() {
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData if self.gz => self.bad(
                None,
                BadFileKind::BadGzip {
                    reason: e.to_string(),
                },
            ),
            io::ErrorKind::UnexpectedEof if self.gz => self.bad(
                None,
                BadFileKind::BadGzip {
                    reason: format!("truncated gzip stream ({e})"),
                },
            ),
            _ => DataError::io(&self.path, e),
        }
    }
}

/// Where the bytes come from: a slice in memory (read in place) or any reader.
enum Source<'a> {
    Slice(&'a [u8]),
    Reader(Box<dyn Read + 'a>),
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Slice(s) => s.read(buf),
            Source::Reader(r) => r.read(buf),
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the IDX file at `path` (raw or gzip) under the default [`Limits`].
///
/// ```
/// use vae_data::idx::{read_idx, ElemType};
/// use vae_data::location::resolve_data_dir;
/// let dir = resolve_data_dir(None, "mnist-sample")?;
/// let labels = read_idx(dir.join("t10k-labels-idx1-ubyte.gz"))?;
/// assert_eq!((labels.elem_type(), labels.dims()), (ElemType::U8, &[2000][..]));
/// # Ok::<(), vae_data::DataError>(())
/// ```
///
/// # Errors
/// A [`DataError::BadFile`] naming the file, the byte offset and the [`BadFileKind`] for
/// every malformed input; [`DataError::LimitExceeded`] before allocating more than the
/// budget; [`DataError::Io`] if the file cannot be read.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    read_idx_with(path, &Limits::default())
}

/// [`read_idx`] under explicit [`Limits`].
pub fn read_idx_with(path: impl AsRef<Path>, limits: &Limits) -> Result<IdxArray> {
    decode_array(IdxStream::open(path.as_ref())?, limits)
}

/// Reads IDX bytes held in memory (raw or gzip); errors name the file `<memory>`.
///
/// A 20-byte input that claims four billion images fails at once, without allocating:
///
/// ```
/// use vae_data::idx::read_idx_bytes;
/// use vae_data::{BadFileKind, Limits};
/// let mut bytes = vec![0, 0, 0x08, 3];
/// for d in [4_000_000_000u32, 28, 28] { bytes.extend_from_slice(&d.to_be_bytes()); }
/// bytes.extend_from_slice(&[0; 4]);
/// let err = read_idx_bytes(&bytes, &Limits::default()).unwrap_err();
/// assert!(matches!(err.bad_file_kind(), Some(BadFileKind::Truncated { actual: 20, .. })));
/// ```
pub fn read_idx_bytes(bytes: &[u8], limits: &Limits) -> Result<IdxArray> {
    decode_array(IdxStream::from_bytes(bytes)?, limits)
}

/// Reads and validates only the header of the IDX file at `path` (checked against the file
/// length as in [`read_idx`]); does not read the payload.
pub fn read_idx_header(path: impl AsRef<Path>) -> Result<IdxHeader> {
    Ok(IdxStream::open(path.as_ref())?.header().clone())
}

macro_rules! decode_be {
    ($s:expr, $n:expr, $t:ty, $variant:ident) => {{
        const N: usize = std::mem::size_of::<$t>();
        let mut v: Vec<$t> = Vec::with_capacity($n);
        $s.for_each_chunk(|c| {
            v.extend(
                c.chunks_exact(N)
                    .map(|b| <$t>::from_be_bytes(b.try_into().expect("chunks_exact"))),
            )
        })?;
        IdxData::$variant(v)
    }};
}

fn decode_array(s: IdxStream<'_>, limits: &Limits) -> Result<IdxArray> {
    let elem = s.header().elem_type();
    s.check_alloc(limits, elem.size() as u64)?;
    let n = s.header().count();
    let dims = s.header().dims().to_vec(); // O(rank), freed on return
    let data = match elem {
        ElemType::U8 => {
            let mut v = Vec::with_capacity(n);
            s.for_each_chunk(|c| v.extend_from_slice(c))?;
            IdxData::U8(v)
        }
        ElemType::I8 => {
            let mut v = Vec::with_capacity(n);
            s.for_each_chunk(|c| v.extend(c.iter().map(|&b| b as i8)))?;
            IdxData::I8(v)
        }
        ElemType::I16 => decode_be!(s, n, i16, I16),
        ElemType::I32 => decode_be!(s, n, i32, I32),
        ElemType::F32 => decode_be!(s, n, f32, F32),
        ElemType::F64 => decode_be!(s, n, f64, F64),
    };
    IdxArray::new(dims, data)
}
