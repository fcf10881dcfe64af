//! Write-then-read round trips for every element type, random ranks and shapes, raw and gzip
//! (a seeded, proptest-like sweep), and the real MNIST sample read back unchanged.

mod common;

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vae_data::idx::{
    read_idx, read_idx_bytes, to_idx_bytes, to_idx_gz_bytes, write_idx, ElemType, IdxArray, IdxData,
};
use vae_data::Limits;

fn random_dims(rng: &mut StdRng) -> Vec<usize> {
    let rank = rng.random_range(1..=4);
    let mut dims: Vec<usize> = (0..rank).map(|_| rng.random_range(0..=6)).collect();
    if rng.random_bool(0.9) {
        // Mostly non-empty arrays; zero dimensions are legal and tested too.
        dims.iter_mut().for_each(|d| *d = (*d).max(1));
    }
    dims
}

fn random_array(rng: &mut StdRng, elem: ElemType) -> IdxArray {
    let dims = random_dims(rng);
    let n: usize = dims.iter().product();
    let data = match elem {
        ElemType::U8 => IdxData::U8((0..n).map(|_| rng.random()).collect()),
        ElemType::I8 => IdxData::I8((0..n).map(|_| rng.random()).collect()),
        ElemType::I16 => IdxData::I16((0..n).map(|_| rng.random()).collect()),
        ElemType::I32 => IdxData::I32((0..n).map(|_| rng.random()).collect()),
        // Any bit pattern except NaN (NaN != NaN would fail equality, not the reader).
        ElemType::F32 => IdxData::F32(
            (0..n)
                .map(|_| f32::from_bits(rng.random()))
                .map(|x| if x.is_nan() { -0.0 } else { x })
                .collect(),
        ),
        ElemType::F64 => IdxData::F64(
            (0..n)
                .map(|_| f64::from_bits(rng.random()))
                .map(|x| if x.is_nan() { f64::INFINITY } else { x })
                .collect(),
        ),
    };
    IdxArray::new(dims, data).unwrap()
}

#[test]
fn every_element_type_round_trips_raw_and_gz() {
    let mut rng = StdRng::seed_from_u64(4);
    let limits = Limits::default();
    for elem in ElemType::ALL {
        for _ in 0..200 {
            let a = random_array(&mut rng, elem);
            let raw = to_idx_bytes(&a);
            assert_eq!(raw[2], elem.code());
            assert_eq!(raw.len(), 4 + 4 * a.dims().len() + a.byte_len());
            assert_eq!(read_idx_bytes(&raw, &limits).unwrap(), a);
            let gz = to_idx_gz_bytes(&a);
            assert_eq!(&gz[..2], &[0x1f, 0x8b]);
            assert_eq!(read_idx_bytes(&gz, &limits).unwrap(), a);
        }
    }
}

#[test]
fn ndarray_conversions_round_trip_and_reject_other_types() {
    let a = ArrayD::from_shape_fn(vec![2, 3, 4], |ix| {
        (ix[0] * 100 + ix[1] * 10 + ix[2]) as i32
    });
    let idx = IdxArray::from(a.clone());
    assert_eq!(idx.elem_type(), ElemType::I32);
    assert_eq!(idx.to_f32()[[1, 2, 3]], 123.0);
    let bytes = to_idx_bytes(&idx);
    let back = read_idx_bytes(&bytes, &Limits::default()).unwrap();
    assert!(ArrayD::<u8>::try_from(back.clone()).is_err());
    assert_eq!(ArrayD::<i32>::try_from(back).unwrap(), a);
    // A transposed (non-standard layout) array is written in logical row-major order.
    let t = ArrayD::from_shape_vec(vec![2, 2], vec![1u8, 2, 3, 4])
        .unwrap()
        .reversed_axes();
    assert_eq!(IdxArray::from(t).data(), &IdxData::U8(vec![1, 3, 2, 4]));
}

#[test]
fn files_round_trip_whatever_their_name() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    for (i, elem) in ElemType::ALL.into_iter().enumerate() {
        let a = random_array(&mut rng, elem);
        // gzip content under a name without .gz, and raw content under a .gz name:
        // detection is by magic bytes, not by name.
        let p1 = tmp.path().join(format!("a{i}.idx"));
        let p2 = tmp.path().join(format!("b{i}.gz"));
        write_idx(&p1, &a, true).unwrap();
        write_idx(&p2, &a, false).unwrap();
        assert_eq!(read_idx(&p1).unwrap(), a);
        assert_eq!(read_idx(&p2).unwrap(), a);
    }
}

#[test]
fn vendored_mnist_sample_re_encodes_byte_for_byte() {
    let dir = vae_data::location::resolve_data_dir(None, "mnist-sample").unwrap();
    let path = dir.join("t10k-labels-idx1-ubyte.gz");
    let labels = read_idx(&path).unwrap();
    assert_eq!(labels.dims(), &[2000]);
    let mut raw = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(to_idx_bytes(&labels), raw);
}
