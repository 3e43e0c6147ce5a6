"""Figures made for the page: sized for the report's text column, their smallest text recorded in the PNG.

The report shows a figure at its natural size, or smaller when it is wider
than the text column (1044 px at a 1366 px window); it never enlarges one. So
a figure is made at most `MAX_WIDTH_PX` wide (at `DPI`, `MAX_WIDTH_IN`
inches), and its text is at least `MIN_FONT_PX` pixels of the PNG:
at 100 dpi that is 7.2 points.

`save_png` writes the figure with the smallest font size of its visible text,
in pixels of the PNG, as a PNG text chunk (`FONT_KEY`). The report reads it
back (`png_min_font_px`) into its <img> element, and the browser test scales
it by the width the image is shown at: the text a reader sees is checked, not
assumed.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

DPI = 100
MIN_FONT_PX = 10.0  # the smallest figure text on screen, in CSS pixels
MIN_FONT_PT = MIN_FONT_PX * 72 / DPI  # 7.2 points at DPI
MAX_WIDTH_PX = 1040  # the report's text column at a 1366 px window (main: 1100 px less its padding)
MAX_WIDTH_IN = MAX_WIDTH_PX / DPI
FONT_KEY = "usseg:min-font-px"


def min_font_px(fig, dpi: float = DPI) -> float | None:
    """The smallest font size, in pixels at `dpi`, of the figure's visible, non-empty text (None: no text).

    A tick label of a tick outside its axis's limits is not drawn, so it does not count.
    """
    from matplotlib.text import Text

    undrawn = _undrawn_tick_labels(fig)
    sizes = [t.get_fontsize() for t in fig.findobj(match=Text)
             if t.get_visible() and t.get_text().strip() and id(t) not in undrawn]
    return min(sizes) * dpi / 72 if sizes else None


def _undrawn_tick_labels(fig) -> set[int]:
    """ids of the tick labels whose tick lies outside its axis's view limits."""
    out = set()
    for ax in fig.axes:
        for labels, limits, coord in ((ax.get_xticklabels(), ax.get_xlim(), 0),
                                      (ax.get_yticklabels(), ax.get_ylim(), 1)):
            low, high = min(limits), max(limits)
            out |= {id(t) for t in labels if not low <= t.get_position()[coord] <= high}
    return out


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display), imported when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes with its smallest text recorded (`save_png`); the figure is closed."""
    data = save_png(fig, None)
    pyplot().close(fig)
    return data


def label_rows(ax, rows, labels, headers, n_rows: int, fontsize: float = 9) -> None:
    """The row labels of a plot whose rows run down from row 0 at the top (a forest plot): each label at
    its row, the group headers (`headers`, one flag per row) in bold, and the axis fitted to `n_rows`."""
    ax.set_yticks(rows, labels, fontsize=fontsize)
    for tick, header in zip(ax.get_yticklabels(), headers):
        if header:
            tick.set_fontweight("bold")
    ax.set_ylim(n_rows - 0.5, -0.5)


def save_png(fig, target, dpi: float = DPI, **savefig_kwargs) -> bytes:
    """Save `fig` as PNG to `target` (a path, or None for bytes only) with its smallest text size recorded.

    Returns the PNG's bytes. `savefig_kwargs` go to savefig (e.g. bbox_inches="tight").
    """
    smallest = min_font_px(fig, dpi)
    metadata = {FONT_KEY: f"{smallest:.2f}"} if smallest is not None else {}
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=metadata,
                **{"facecolor": "white", **savefig_kwargs})
    data = buf.getvalue()
    if target is not None:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def png_text(data: bytes) -> dict[str, str]:
    """The tEXt, zTXt and iTXt chunks of a PNG (empty when it is not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return {}
    out, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"tEXt" and b"\0" in body:
            key, value = body.split(b"\0", 1)
            out[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"zTXt" and b"\0" in body:
            key, rest = body.split(b"\0", 1)
            out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt" and b"\0" in body:
            key, rest = body.split(b"\0", 1)
            compressed, rest = rest[0], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _translated, _, text = rest.partition(b"\0")
            out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
        elif kind == b"IEND":
            break
    return out


def png_min_font_px(data: bytes) -> float | None:
    """The smallest text size `save_png` recorded in a PNG, in its pixels (None: not recorded)."""
    value = png_text(data).get(FONT_KEY)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
