//! The `tests/bad/` corpus: each malformed file gives its own typed error, naming the file.

use std::path::PathBuf;

use vae_data::idx::{read_idx_header, read_idx_with};
use vae_data::{BadFileKind, DataError, Limits};

fn bad(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bad")
        .join(name)
}

fn kind_of(name: &str) -> BadFileKind {
    match read_idx_with(bad(name), &Limits::default()) {
        Err(DataError::BadFile { path, kind, .. }) => {
            assert_eq!(path, bad(name));
            kind
        }
        other => panic!("{name}: expected a bad-file error, got {other:?}"),
    }
}

#[test]
fn every_bad_file_gives_its_typed_error() {
    use BadFileKind::*;
    type Check = fn(&BadFileKind) -> bool;
    let table: &[(&str, Check)] = &[
        ("empty.idx", |k| {
            matches!(
                k,
                Truncated {
                    expected: 4,
                    actual: 0
                }
            )
        }),
        (
            "zip-not-idx.idx",
            |k| matches!(k, BadMagic { found } if found == b"PK\x03\x04"),
        ),
        ("unknown-type-code.idx", |k| {
            matches!(k, UnknownTypeCode { code: 0x0A })
        }),
        ("rank-zero.idx", |k| matches!(k, BadRank { rank: 0 })),
        ("dims-overflow.idx", |k| matches!(k, DimsOverflow { .. })),
        ("four-billion-images.idx", |k| {
            matches!(
                k,
                Truncated {
                    expected: 3_136_000_000_016,
                    actual: 20
                }
            )
        }),
        ("truncated-header.idx", |k| {
            matches!(
                k,
                Truncated {
                    expected: 16,
                    actual: 12
                }
            )
        }),
        ("truncated-payload.idx", |k| {
            matches!(
                k,
                Truncated {
                    expected: 24,
                    actual: 19
                }
            )
        }),
        ("trailing-bytes.idx", |k| {
            matches!(
                k,
                TrailingBytes {
                    expected: 24,
                    actual: 26
                }
            )
        }),
        ("f64-odd-payload.idx", |k| {
            matches!(
                k,
                Truncated {
                    expected: 24,
                    actual: 23
                }
            )
        }),
        ("gzip-impossible-size.idx.gz", |k| {
            matches!(k, ImpossibleSize { .. })
        }),
        ("gzip-truncated.idx.gz", |k| {
            matches!(k, BadGzip { .. } | Truncated { .. })
        }),
        ("gzip-trailer-cut.idx.gz", |k| matches!(k, BadGzip { .. })),
        ("gzip-bad-crc.idx.gz", |k| matches!(k, BadGzip { .. })),
        ("gzip-trailing-garbage.idx.gz", |k| {
            matches!(k, BadGzip { .. })
        }),
        ("gzip-not-idx.gz", |k| matches!(k, BadMagic { .. })),
        ("gzip-corrupt-deflate.idx.gz", |k| {
            matches!(k, BadGzip { .. })
        }),
        ("gzip-bad-header.gz", |k| matches!(k, BadGzip { .. })),
    ];
    for (name, check) in table {
        let k = kind_of(name);
        assert!(check(&k), "{name}: unexpected {k:?}");
    }
    // Every file in the folder is in the table (or is the over-limit case / README).
    let listed = std::fs::read_dir(bad("")).unwrap().count();
    assert_eq!(
        listed,
        table.len() + 2,
        "a file in tests/bad has no expectation"
    );
}

#[test]
fn offsets_point_at_the_problem() {
    let e = read_idx_with(bad("unknown-type-code.idx"), &Limits::default()).unwrap_err();
    assert!(matches!(
        e,
        DataError::BadFile {
            offset: Some(2),
            ..
        }
    ));
    let e = read_idx_with(bad("rank-zero.idx"), &Limits::default()).unwrap_err();
    assert!(matches!(
        e,
        DataError::BadFile {
            offset: Some(3),
            ..
        }
    ));
    let e = read_idx_with(bad("trailing-bytes.idx"), &Limits::default()).unwrap_err();
    assert!(matches!(
        e,
        DataError::BadFile {
            offset: Some(24),
            ..
        }
    ));
    let msg = e.to_string();
    assert!(
        msg.contains("trailing-bytes.idx") && msg.contains("byte 24"),
        "{msg}"
    );
}

#[test]
fn header_only_check_fails_fast_too() {
    let e = read_idx_header(bad("four-billion-images.idx")).unwrap_err();
    assert!(matches!(
        e.bad_file_kind(),
        Some(BadFileKind::Truncated { .. })
    ));
}

#[test]
fn gzip_bomb_is_stopped_by_the_budget_but_loads_without_one() {
    let path = bad("gzip-over-limit.idx.gz");
    match read_idx_with(&path, &Limits::with_max_alloc(1 << 20)) {
        Err(DataError::LimitExceeded {
            requested: 2_000_000,
            limit: 1_048_576,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let a = read_idx_with(&path, &Limits::no_limits()).unwrap();
    assert_eq!(a.dims(), &[2_000_000]);
}

#[test]
fn missing_file_is_io_with_path() {
    match read_idx_with(bad("no-such-file.idx"), &Limits::default()) {
        Err(DataError::Io { path, source }) => {
            assert_eq!(path, bad("no-such-file.idx"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}
