//! Classification metrics: accuracy, per-class accuracy and the confusion matrix (as a
//! text table and as a PNG heatmap). Also the counting core of the segmentation metrics,
//! which treat every pixel as a sample.

use std::fmt::Write as _;
use std::path::Path;

use ndarray::Array2;

use crate::error::{Result, VisionError};

/// Fraction of positions where `pred[i] == truth[i]`.
///
/// ```
/// assert_eq!(vae_vision::metrics::accuracy(&[0, 1, 2, 2], &[0, 1, 1, 2])?, 0.75);
/// # Ok::<(), vae_vision::VisionError>(())
/// ```
///
/// # Errors
/// [`VisionError::ShapeMismatch`] if the lengths differ, [`VisionError::Empty`] if both
/// are empty.
pub fn accuracy(pred: &[usize], truth: &[usize]) -> Result<f64> {
    if pred.len() != truth.len() {
        return Err(VisionError::shape(
            "accuracy",
            &[truth.len()],
            &[pred.len()],
        ));
    }
    if pred.is_empty() {
        return Err(VisionError::Empty {
            op: "accuracy",
            what: "no samples".into(),
        });
    }
    let hits = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    Ok(hits as f64 / pred.len() as f64)
}

/// A confusion matrix: `counts[[t, p]]` is the number of samples of true class `t`
/// predicted as `p`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfusionMatrix {
    /// `[num_classes, num_classes]`, rows = true class, columns = predicted class.
    pub counts: Array2<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        ConfusionMatrix {
            counts: Array2::zeros((num_classes, num_classes)),
        }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.counts.nrows()
    }

    /// Builds the matrix from paired label lists.
    ///
    /// ```
    /// use vae_vision::metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 1], &[0, 1, 1, 1], 2)?;
    /// assert_eq!(cm.counts, ndarray::array![[1u64, 1], [0, 2]]);
    /// assert_eq!(cm.accuracy(), Some(0.75));
    /// assert_eq!(cm.per_class_accuracy(), vec![Some(0.5), Some(1.0)]);
    /// # Ok::<(), vae_vision::VisionError>(())
    /// ```
    ///
    /// # Errors
    /// [`VisionError::ShapeMismatch`] if the lengths differ and
    /// [`VisionError::LabelOutOfRange`] for a label `>= num_classes`.
    pub fn from_labels(truth: &[usize], pred: &[usize], num_classes: usize) -> Result<Self> {
        let mut cm = ConfusionMatrix::new(num_classes);
        cm.add(truth, pred)?;
        Ok(cm)
    }

    /// Adds paired labels to the counts.
    ///
    /// # Errors
    /// As [`ConfusionMatrix::from_labels`]; on error nothing is added.
    pub fn add(&mut self, truth: &[usize], pred: &[usize]) -> Result<()> {
        if truth.len() != pred.len() {
            return Err(VisionError::shape(
                "ConfusionMatrix::add",
                &[truth.len()],
                &[pred.len()],
            ));
        }
        self.add_iter(truth.iter().copied().zip(pred.iter().copied()))
    }

    /// Adds `(truth, pred)` pairs; checks every label first, so on error nothing is added.
    pub(crate) fn add_iter(
        &mut self,
        pairs: impl Iterator<Item = (usize, usize)> + Clone,
    ) -> Result<()> {
        let n = self.num_classes();
        if let Some((t, p)) = pairs.clone().find(|&(t, p)| t >= n || p >= n) {
            let label = if t >= n { t } else { p };
            return Err(VisionError::LabelOutOfRange {
                op: "ConfusionMatrix::add",
                label,
                num_classes: n,
            });
        }
        for (t, p) in pairs {
            self.counts[[t, p]] += 1;
        }
        Ok(())
    }

    /// Total number of samples.
    pub fn total(&self) -> u64 {
        self.counts.sum()
    }

    /// Overall accuracy (trace / total); `None` when empty. For per-pixel counts this is
    /// the pixel accuracy.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        (total > 0).then(|| self.counts.diag().sum() as f64 / total as f64)
    }

    /// Per-class accuracy (recall): `counts[c, c] / Σ_p counts[c, p]`; `None` for a class
    /// with no samples.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.counts
            .rows()
            .into_iter()
            .enumerate()
            .map(|(c, row)| {
                let n = row.sum();
                (n > 0).then(|| row[c] as f64 / n as f64)
            })
            .collect()
    }

    /// Mean of the defined per-class accuracies (balanced accuracy); `None` if none is defined.
    pub fn mean_per_class_accuracy(&self) -> Option<f64> {
        mean_defined(&self.per_class_accuracy())
    }

    /// Per-class intersection over union: `TP / (TP + FP + FN)` with `TP = counts[c, c]`,
    /// `FN` the rest of row `c` and `FP` the rest of column `c`; `None` for a class absent
    /// from both truth and prediction.
    pub fn per_class_iou(&self) -> Vec<Option<f64>> {
        (0..self.num_classes())
            .map(|c| {
                let tp = self.counts[[c, c]];
                let union = self.counts.row(c).sum() + self.counts.column(c).sum() - tp;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect()
    }

    /// Mean IoU over the classes where it is defined; `None` if none is.
    pub fn mean_iou(&self) -> Option<f64> {
        mean_defined(&self.per_class_iou())
    }

    /// A text table: one row per true class, one column per predicted class, with class
    /// names (or indices) as headers and per-class accuracy at the end of each row.
    ///
    /// ```
    /// use vae_vision::metrics::ConfusionMatrix;
    /// let cm = ConfusionMatrix::from_labels(&[0, 1, 1], &[0, 1, 0], 2)?;
    /// let t = cm.to_text(Some(&["cat", "dog"]));
    /// assert!(t.contains("cat") && t.contains("50.0%"));
    /// # Ok::<(), vae_vision::VisionError>(())
    /// ```
    pub fn to_text(&self, names: Option<&[&str]>) -> String {
        let n = self.num_classes();
        let name = |c: usize| -> String {
            names
                .and_then(|v| v.get(c))
                .map(|s| s.to_string())
                .unwrap_or_else(|| c.to_string())
        };
        let max_count = self
            .counts
            .iter()
            .max()
            .copied()
            .unwrap_or(0)
            .to_string()
            .len();
        let cw = (0..n)
            .map(|c| name(c).len())
            .max()
            .unwrap_or(1)
            .max(max_count)
            .max(3);
        let mut s = String::new();
        let _ = write!(s, "{:>cw$} |", "t\\p");
        for c in 0..n {
            let _ = write!(s, " {:>cw$}", name(c));
        }
        let _ = writeln!(s, " | acc");
        let acc = self.per_class_accuracy();
        for (t, acc_t) in acc.iter().enumerate() {
            let _ = write!(s, "{:>cw$} |", name(t));
            for p in 0..n {
                let _ = write!(s, " {:>cw$}", self.counts[[t, p]]);
            }
            match acc_t {
                Some(a) => {
                    let _ = writeln!(s, " | {:.1}%", 100.0 * a);
                }
                None => {
                    let _ = writeln!(s, " | -");
                }
            }
        }
        s
    }

    /// The matrix as an RGB heatmap, `cell` pixels per entry: each row is normalised by
    /// its total, and a cell goes from white (0) to dark blue (1). No text.
    pub fn to_image(&self, cell: u32) -> image::RgbImage {
        let n = self.num_classes() as u32;
        let cell = cell.max(1);
        let mut img = image::RgbImage::new(n * cell, n * cell);
        for t in 0..n as usize {
            let row_total = self.counts.row(t).sum().max(1) as f64;
            for p in 0..n as usize {
                let v = self.counts[[t, p]] as f64 / row_total;
                let lerp = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
                let px = image::Rgb([lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0)]);
                for dy in 0..cell {
                    for dx in 0..cell {
                        img.put_pixel(p as u32 * cell + dx, t as u32 * cell + dy, px);
                    }
                }
            }
        }
        img
    }

    /// Writes [`ConfusionMatrix::to_image`] as a PNG.
    ///
    /// # Errors
    /// [`VisionError::Image`] if the file cannot be written.
    pub fn save_png(&self, path: impl AsRef<Path>, cell: u32) -> Result<()> {
        let path = path.as_ref();
        self.to_image(cell)
            .save(path)
            .map_err(|source| VisionError::Image {
                path: path.to_path_buf(),
                source,
            })
    }
}

fn mean_defined(v: &[Option<f64>]) -> Option<f64> {
    let d: Vec<f64> = v.iter().flatten().copied().collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        // truth: 0 0 1 1 2 ; pred: 0 1 1 1 0
        let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], 3).unwrap();
        // class 0: TP 1, FN 1, FP 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 0, FN 1 -> 0.
        let iou = cm.per_class_iou();
        assert_eq!(iou, vec![Some(1.0 / 3.0), Some(2.0 / 3.0), Some(0.0)]);
        assert!((cm.mean_iou().unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            cm.per_class_accuracy(),
            vec![Some(0.5), Some(1.0), Some(0.0)]
        );
        assert_eq!(cm.accuracy(), Some(0.6));
    }

    #[test]
    fn absent_class_is_none_and_errors_add_nothing() {
        let mut cm = ConfusionMatrix::from_labels(&[0, 0], &[0, 0], 3).unwrap();
        assert_eq!(cm.per_class_iou(), vec![Some(1.0), None, None]);
        assert_eq!(cm.mean_iou(), Some(1.0));
        assert!(matches!(
            cm.add(&[0, 5], &[0, 0]),
            Err(VisionError::LabelOutOfRange { label: 5, .. })
        ));
        assert_eq!(cm.total(), 2);
        assert!(matches!(
            accuracy(&[0], &[0, 1]),
            Err(VisionError::ShapeMismatch { .. })
        ));
        assert!(matches!(accuracy(&[], &[]), Err(VisionError::Empty { .. })));
    }

    #[test]
    fn heatmap_png_colours() {
        let cm = ConfusionMatrix::from_labels(&[0, 1], &[0, 0], 2).unwrap();
        let img = cm.to_image(4);
        assert_eq!(img.dimensions(), (8, 8));
        assert_eq!(img.get_pixel(0, 0).0, [8, 48, 107]); // row 0: all in column 0
        assert_eq!(img.get_pixel(4, 0).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(0, 4).0, [8, 48, 107]); // row 1 predicted as 0
        let dir = std::env::temp_dir().join(format!("vae_vision_cm_{}.png", std::process::id()));
        cm.save_png(&dir, 4).unwrap();
        let back = image::open(&dir).unwrap().to_rgb8();
        assert_eq!(back, img);
        let _ = std::fs::remove_file(&dir);
    }
}
