"""One matplotlib style for every scoredyn figure, and the drawing helpers they share."""
import contextlib
import json
import pathlib

import numpy as np

#: paper-size defaults: single column 3.4 in wide, 8-9 pt text, light grid
STYLE = {
    "figure.figsize": (3.4, 2.6),
    "figure.dpi": 110,
    "savefig.dpi": 220,
    "savefig.bbox": "tight",
    "font.size": 8.5,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8.5,
    "legend.fontsize": 7,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "mathtext.fontset": "cm",
}

DATA_COLOR = "#c0392b"
END_COLOR = "#1f3a93"
CELL_COLOR = "0.55"
KIND_COLORS = {"data": "#1f7a1f", "boundary": "#d35400", "unresolved": "#7f8c8d"}


@contextlib.contextmanager
def style():
    """Context manager applying :data:`STYLE` (and the non-interactive Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with plt.rc_context(STYLE):
        yield plt


def draw_voronoi(ax, data, bounds, **kw):
    """Draw the Voronoi edges of 2-D ``data`` clipped to ``bounds`` and the data points."""
    from matplotlib.collections import LineCollection

    from ..geometry.voronoi import voronoi_segments
    segs = voronoi_segments(data, bounds)
    ax.add_collection(LineCollection(segs, colors=kw.get("color", CELL_COLOR),
                                     linewidths=kw.get("lw", 0.6), zorder=1))
    ax.scatter(data[:, 0], data[:, 1], s=kw.get("s", 14), c=DATA_COLOR, zorder=4,
               label="data $x_i$", edgecolors="white", linewidths=0.4)
    ax.set_xlim(bounds[0], bounds[1])
    ax.set_ylim(bounds[2], bounds[3])
    ax.set_aspect("equal")


def save(fig, out_dir, name, numbers):
    """Write ``name.png``, ``name.pdf`` and ``name.json`` (the numbers behind the figure).

    Returns the list of written paths.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf", out / f"{name}.json"]
    fig.savefig(paths[0])
    fig.savefig(paths[1])
    paths[2].write_text(json.dumps(_jsonable(numbers), indent=1))
    return paths


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else str(v)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
