#!/usr/bin/env python3
"""Make the scikit-image reference fixtures for vae-vision's Canny and thinning tests.

Usage (from the repository root):
    python3 -m venv /tmp/venv-skimage && /tmp/venv-skimage/bin/pip install scikit-image
    /tmp/venv-skimage/bin/python scripts/canny_reference.py \
        --data ../shared/data/bsds500/val --out crates/vae-vision/tests/fixtures

Writes, for three BSDS500 val images (the first three ids in sorted order):
  canny/<id>_gray.png           96x96 8-bit grey crop (input; RGB -> grey with
                                0.2989 R + 0.5870 G + 0.1140 B, 2x2 box downscale,
                                centre crop, rounded to 8 bits)
  canny/<id>_s<sigma>.png       skimage.feature.canny(gray / 255, sigma, low, high)
                                as 0/255 PNG
  canny/manifest.csv            input,sigma,low,high,output
  thin/<id>_bw.png              binary input: scipy Sobel magnitude of the grey crop > 0.5
  thin/<id>_thin.png            skimage.morphology.thin(bw) (MATLAB bwmorph 'thin', Inf)
Versions used are written to canny/VERSIONS.txt.
"""
import argparse
import os

import numpy as np
import scipy
import scipy.ndimage as ndi
import skimage
from PIL import Image
from skimage.feature import canny
from skimage.morphology import thin

SETTINGS = [(1.0, 0.1, 0.2), (2.0, 0.05, 0.15)]
SIZE = 96


def grey_crop(path):
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    g = 0.2989 * rgb[..., 0] + 0.5870 * rgb[..., 1] + 0.1140 * rgb[..., 2]
    h, w = (g.shape[0] // 2) * 2, (g.shape[1] // 2) * 2
    g = g[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    y0, x0 = (g.shape[0] - SIZE) // 2, (g.shape[1] - SIZE) // 2
    g = g[y0:y0 + SIZE, x0:x0 + SIZE]
    return np.clip(np.round(g * 255.0), 0, 255).astype(np.uint8)


def save_bool(arr, path):
    Image.fromarray(arr.astype(np.uint8) * 255).save(path, optimize=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="BSDS500 split folder with <id>.jpg")
    ap.add_argument("--out", required=True, help="fixtures folder (gets canny/ and thin/)")
    args = ap.parse_args()
    cdir = os.path.join(args.out, "canny")
    tdir = os.path.join(args.out, "thin")
    os.makedirs(cdir, exist_ok=True)
    os.makedirs(tdir, exist_ok=True)
    ids = sorted(f[:-4] for f in os.listdir(args.data) if f.endswith(".jpg"))[:3]
    rows = ["input,sigma,low,high,output"]
    for i in ids:
        g8 = grey_crop(os.path.join(args.data, i + ".jpg"))
        Image.fromarray(g8).save(os.path.join(cdir, f"{i}_gray.png"), optimize=True)
        img = g8.astype(np.float64) / 255.0
        for sigma, low, high in SETTINGS:
            e = canny(img, sigma=sigma, low_threshold=low, high_threshold=high)
            name = f"{i}_s{sigma:g}.png"
            save_bool(e, os.path.join(cdir, name))
            rows.append(f"{i}_gray.png,{sigma},{low},{high},{name}")
        mag = np.hypot(ndi.sobel(img, axis=0), ndi.sobel(img, axis=1))
        bw = mag > 0.5
        save_bool(bw, os.path.join(tdir, f"{i}_bw.png"))
        save_bool(thin(bw), os.path.join(tdir, f"{i}_thin.png"))
    with open(os.path.join(cdir, "manifest.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    with open(os.path.join(cdir, "VERSIONS.txt"), "w") as f:
        f.write(f"scikit-image {skimage.__version__}\nscipy {scipy.__version__}\nnumpy {np.__version__}\n")


if __name__ == "__main__":
    main()
