//! Every proper prefix of a valid IDX file, raw or gzip, is an error (never a panic, never
//! `Ok`), after `image`'s `tests/truncate_images.rs`.

use vae_data::idx::{read_idx_bytes, to_idx_bytes, to_idx_gz_bytes, IdxArray, IdxData};
use vae_data::{BadFileKind, DataError, Limits};

fn samples() -> Vec<IdxArray> {
    vec![
        IdxArray::new(
            vec![3, 4, 5],
            IdxData::U8((0..60).map(|i| (i * 7) as u8).collect()),
        )
        .unwrap(),
        IdxArray::new(vec![7], IdxData::I16((0..7).map(|i| i * -1000).collect())).unwrap(),
        IdxArray::new(
            vec![2, 3],
            IdxData::F64(vec![0.5, -2.0, 1e-300, 3.0, 4.0, 5.0]),
        )
        .unwrap(),
        IdxArray::new(vec![4, 2], IdxData::F32(vec![1.5; 8])).unwrap(),
    ]
}

#[test]
fn every_prefix_of_raw_idx_is_truncated() {
    let limits = Limits::default();
    for a in samples() {
        let bytes = to_idx_bytes(&a);
        assert_eq!(read_idx_bytes(&bytes, &limits).unwrap(), a);
        for len in 0..bytes.len() {
            match read_idx_bytes(&bytes[..len], &limits) {
                Err(DataError::BadFile {
                    kind: BadFileKind::Truncated { expected, actual },
                    offset,
                    ..
                }) => {
                    assert_eq!(actual, len as u64);
                    assert_eq!(offset, Some(len as u64));
                    assert!(expected > actual);
                }
                other => panic!("prefix {len}: {other:?}"),
            }
        }
    }
}

#[test]
fn every_prefix_of_gz_idx_is_an_error() {
    let limits = Limits::default();
    for a in samples() {
        let gz = to_idx_gz_bytes(&a);
        assert_eq!(read_idx_bytes(&gz, &limits).unwrap(), a);
        // A lone 0x1f is neither gzip nor IDX (whose first byte is 0): bad magic.
        assert!(matches!(
            read_idx_bytes(&gz[..1], &limits)
                .unwrap_err()
                .bad_file_kind(),
            Some(BadFileKind::BadMagic { .. })
        ));
        for len in (0..gz.len()).filter(|&l| l != 1) {
            let r = read_idx_bytes(&gz[..len], &limits);
            match &r {
                Err(DataError::BadFile { kind, .. }) => assert!(
                    matches!(
                        kind,
                        BadFileKind::Truncated { .. }
                            | BadFileKind::BadGzip { .. }
                            | BadFileKind::ImpossibleSize { .. }
                    ),
                    "prefix {len}: {kind:?}"
                ),
                other => panic!("prefix {len} of {}: {other:?}", gz.len()),
            }
        }
    }
}

#[test]
fn trailing_bytes_are_an_error_raw_and_gz() {
    let limits = Limits::default();
    let a = &samples()[0];
    let mut raw = to_idx_bytes(a);
    raw.push(0);
    assert!(matches!(
        read_idx_bytes(&raw, &limits).unwrap_err().bad_file_kind(),
        Some(BadFileKind::TrailingBytes { .. })
    ));
    // Extra decompressed data inside the gzip stream.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    let gz = gz.finish().unwrap();
    assert!(matches!(
        read_idx_bytes(&gz, &limits).unwrap_err().bad_file_kind(),
        Some(BadFileKind::TrailingBytes { .. })
    ));
    // Garbage after the gzip member.
    let mut gz = to_idx_gz_bytes(a);
    gz.extend_from_slice(b"garbage");
    assert!(matches!(
        read_idx_bytes(&gz, &limits).unwrap_err().bad_file_kind(),
        Some(BadFileKind::BadGzip { .. })
    ));
}
