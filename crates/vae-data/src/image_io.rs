//! Decoding image files (PNG, JPEG, BMP, TIFF, GIF) into `f32` arrays in `[0, 1]`, with the
//! crate's [`Limits`] passed on to the `image` decoders.

use std::path::Path;

use image::DynamicImage;
use ndarray::Array3;

use crate::error::{DataError, Result};
use crate::limits::Limits;

/// Decodes the image at `path`, guessing the format from its content, under `limits`.
///
/// The `image` decoders enforce `limits.max_alloc` themselves; when they refuse, the error
/// is a [`DataError::Decode`] holding their `ImageError::Limits` (they do not report how
/// much was requested, so no [`DataError::LimitExceeded`] figure is made up).
pub(crate) fn open_image(path: &Path, limits: &Limits) -> Result<DynamicImage> {
    let reader = image::ImageReader::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = reader
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?;
    let mut l = image::Limits::default();
    l.max_alloc = Some(limits.max_alloc);
    reader.limits(l);
    reader.decode().map_err(|e| match e {
        // A file that ends early reaches the decoder as an I/O error, but it is a bad
        // file, not a failing disk: report it as a decode error.
        image::ImageError::IoError(source)
            if !matches!(
                source.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            DataError::io(path, source)
        }
        source => DataError::Decode {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// `[1, h, w]` grayscale in `[0, 1]` (8-bit luma / 255, 16-bit luma / 65535).
pub(crate) fn to_gray_chw(img: &DynamicImage) -> Array3<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    match img {
        DynamicImage::ImageLuma16(buf) => {
            let v: Vec<f32> = buf.as_raw().iter().map(|&p| p as f32 / 65535.0).collect();
            Array3::from_shape_vec((1, h, w), v).expect("luma16 buffer is h*w")
        }
        _ => {
            let luma = img.to_luma8();
            let v: Vec<f32> = luma.as_raw().iter().map(|&p| p as f32 / 255.0).collect();
            Array3::from_shape_vec((1, h, w), v).expect("luma8 buffer is h*w")
        }
    }
}

/// `[3, h, w]` RGB in `[0, 1]`, planar (all red, then all green, then all blue).
pub(crate) fn to_rgb_chw(img: &DynamicImage) -> Array3<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rgb = img.to_rgb8();
    let raw = rgb.as_raw();
    let plane = h * w;
    let mut v = vec![0f32; 3 * plane];
    for (i, px) in raw.chunks_exact(3).enumerate() {
        v[i] = px[0] as f32 / 255.0;
        v[plane + i] = px[1] as f32 / 255.0;
        v[2 * plane + i] = px[2] as f32 / 255.0;
    }
    Array3::from_shape_vec((3, h, w), v).expect("rgb buffer is 3*h*w")
}
