"""What the pipeline shows people: small pictures (BEV label maps, class histograms, bar charts, curves;
Pillow only) and markdown tables, for Dagster metadata and reports."""

from __future__ import annotations

import base64
import io

import numpy as np

from ops.occ3d import CLASS_COLORS, CLASS_NAMES, FREE, UNOBSERVED


class Markdown(str):
    """Text to be shown as markdown (tables, embedded pictures): the asset layer renders it so in the UI."""


def bev_image(semantics: np.ndarray, scale: int = 2) -> np.ndarray:
    """(X, Y, Z) uint8 classes -> (Y*scale, X*scale, 3) RGB: the highest non-free voxel of each column.

    Drawn as seen from above with +x (forward) up and +y (left) to the left. Columns with nothing
    are white (free) or grey where every voxel is unobserved (255).
    """
    sem = np.asarray(semantics)
    if sem.ndim != 3:
        raise ValueError(f"expected an (X, Y, Z) volume, got shape {sem.shape}")
    occupied = (sem != FREE) & (sem != UNOBSERVED)
    top = sem.shape[2] - 1 - np.argmax(occupied[:, :, ::-1], axis=2)
    cls = np.take_along_axis(sem, top[:, :, None], 2)[:, :, 0]
    rgb = CLASS_COLORS[np.where(occupied.any(2), cls, FREE)].copy()
    rgb[(sem == UNOBSERVED).all(2)] = (128, 128, 128)
    img = rgb[::-1, ::-1]  # row r shows x index X-1-r (+x up), column c shows y index Y-1-c (+y left)
    return np.repeat(np.repeat(img, scale, 0), scale, 1)


def side_by_side(images: list[np.ndarray], gap: int = 6) -> np.ndarray:
    h = max(i.shape[0] for i in images)
    parts = []
    for k, im in enumerate(images):
        pad = np.full((h, im.shape[1], 3), 255, np.uint8)
        pad[: im.shape[0]] = im
        parts.append(pad)
        if k + 1 < len(images):
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, 1)


def titled(rgb: np.ndarray, title: str, height: int = 18) -> np.ndarray:
    """The picture with a line of text above it."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (rgb.shape[1], rgb.shape[0] + height), (255, 255, 255))
    img.paste(Image.fromarray(np.asarray(rgb, dtype=np.uint8)), (0, height))
    ImageDraw.Draw(img).text((2, 3), title, fill=(0, 0, 0))
    return np.asarray(img)


def legend_image(classes: list[int], width: int = 150, row_h: int = 14, unobserved: bool = True) -> np.ndarray:
    """A colour key for BEV maps: one swatch and name per class id (and the unobserved grey)."""
    from PIL import Image, ImageDraw

    entries = [(CLASS_NAMES[c], tuple(int(v) for v in CLASS_COLORS[c])) for c in classes]
    if unobserved:
        entries.append(("unobserved", (128, 128, 128)))
    img = Image.new("RGB", (width, row_h * len(entries) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for i, (name, colour) in enumerate(entries):
        y = 2 + i * row_h
        draw.rectangle([2, y + 1, 14, y + row_h - 2], fill=colour, outline=(0, 0, 0))
        draw.text((20, y + 1), name, fill=(0, 0, 0))
    return np.asarray(img)


def histogram_image(counts: np.ndarray, width: int = 520, bar_h: int = 14) -> np.ndarray:
    """Horizontal bar chart of per-class counts (log scale), one bar per class with its colour and name."""
    from PIL import Image, ImageDraw

    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts)
    img = Image.new("RGB", (width, bar_h * n + 8), "white")
    draw = ImageDraw.Draw(img)
    top = np.log10(counts.max() + 1) if counts.max() > 0 else 1.0
    label_w, bar_w = 150, width - 150 - 70
    for i, c in enumerate(counts):
        y = 4 + i * bar_h
        draw.text((4, y), CLASS_NAMES[i] if i < len(CLASS_NAMES) else str(i), fill="black")
        w = int(bar_w * np.log10(c + 1) / top) if c > 0 else 0
        colour = tuple(int(v) for v in CLASS_COLORS[i % len(CLASS_COLORS)])
        draw.rectangle([label_w, y + 2, label_w + max(w, 1), y + bar_h - 3], fill=colour, outline="black")
        draw.text((label_w + w + 4, y), f"{int(c)}", fill="black")
    return np.asarray(img)


def bar_image(names: list[str], values: list[float], unit: str = "s", width: int = 520, bar_h: int = 16) -> np.ndarray:
    """Horizontal bar chart on a linear scale (for example seconds per pipeline step)."""
    from PIL import Image, ImageDraw

    if len(names) != len(values):
        raise ValueError(f"bar_image: {len(names)} names for {len(values)} values")
    vals = np.asarray(values, dtype=np.float64)
    img = Image.new("RGB", (width, bar_h * len(vals) + 8), "white")
    draw = ImageDraw.Draw(img)
    top = vals.max() if len(vals) and vals.max() > 0 else 1.0
    label_w, bar_w = 150, width - 150 - 80
    for i, (name, v) in enumerate(zip(names, vals)):
        y = 4 + i * bar_h
        draw.text((4, y), name, fill="black")
        w = int(bar_w * v / top)
        draw.rectangle([label_w, y + 2, label_w + max(w, 1), y + bar_h - 3], fill=(70, 130, 180), outline="black")
        draw.text((label_w + w + 4, y), f"{v:.2f} {unit}", fill="black")
    return np.asarray(img)


def line_image(series: dict[str, list[float]], width: int = 560, height: int = 260, xlabel: str = "step") -> np.ndarray:
    """Line plot of one or more series over their index (for example the training loss per step), with
    the y range and the last value of each series written out."""
    from PIL import Image, ImageDraw

    series = {k: np.asarray(v, dtype=np.float64) for k, v in series.items() if len(v)}
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    if not series:
        draw.text((10, height // 2), "no data", fill="black")
        return np.asarray(img)
    left, right, top, bottom = 60, width - 10, 24, height - 24
    lo = min(float(np.nanmin(v)) for v in series.values())
    hi = max(float(np.nanmax(v)) for v in series.values())
    hi = hi if hi > lo else lo + 1.0
    n = max(len(v) for v in series.values())
    draw.rectangle([left, top, right, bottom], outline="black")
    draw.text((4, top - 6), f"{hi:.3g}", fill="black")
    draw.text((4, bottom - 6), f"{lo:.3g}", fill="black")
    draw.text((left, bottom + 6), "1", fill="black")
    draw.text((right - 40, bottom + 6), f"{n} {xlabel}s", fill="black")
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    for k, (name, v) in enumerate(series.items()):
        xs = left + (right - left) * np.arange(len(v)) / max(1, n - 1)
        ys = bottom - (bottom - top) * (v - lo) / (hi - lo)
        colour = colours[k % len(colours)]
        if len(v) > 1:
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=colour, width=2)
        draw.text((left + 8 + 150 * k, 4), f"{name}: {v[-1]:.4g}", fill=colour)
    return np.asarray(img)


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def markdown_table(header: list[str], rows: list[list]) -> Markdown:
    """A markdown table; cells are written with str() (None as an empty cell)."""
    width = len(header)
    bad = [r for r in rows if len(r) != width]
    if bad:
        raise ValueError(f"markdown_table: {len(header)} columns {header}, but a row has {len(bad[0])}: {bad[0]}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in rows]
    return Markdown("\n".join(lines))


def markdown_image(rgb: np.ndarray, alt: str) -> Markdown:
    """Markdown embedding the picture as a data URI (the Dagster UI renders it inline)."""
    return Markdown(f"![{alt}](data:image/png;base64,{base64.b64encode(png_bytes(rgb)).decode()})")


def class_map_image(semantics: np.ndarray) -> np.ndarray:
    """(H, W) Occ3D classes -> RGB in the class colours; unknown (255) is grey, sky (17) white."""
    sem = np.asarray(semantics)
    rgb = CLASS_COLORS[np.where(sem == UNOBSERVED, FREE, sem) % len(CLASS_COLORS)].copy()
    rgb[sem == UNOBSERVED] = (128, 128, 128)
    return rgb


def depth_image(depth: np.ndarray, max_depth: float = 80.0) -> np.ndarray:
    """(H, W) metres -> RGB: near dark blue to far yellow (log scale), black where there is no depth."""
    d = np.asarray(depth, dtype=np.float32)
    t = np.clip(np.log1p(np.clip(d, 0, max_depth)) / np.log1p(max_depth), 0, 1)
    rgb = np.stack([255 * t, 255 * (0.2 + 0.7 * t), 255 * (0.6 - 0.5 * t)], -1)
    rgb[d <= 0] = 0
    return np.clip(rgb, 0, 255).astype(np.uint8)
