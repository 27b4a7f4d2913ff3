"""Figure 4 — trajectories that stay on hyperplanes.

Data (+-1, 0), (0, +-1), and separately (+-1, 0); 80 starts on the boundary of the
square [-2.1, 2.1]^2; log-time up to s = 100.  Most collapse onto the data; starts on
the symmetry lines that are Voronoi boundaries end on them.  End points coloured by
``classify``.
"""
import numpy as np

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.geometry.voronoi import KIND_NAMES, classify

NAME = "fig04_hyperplanes"


def square_starts(n, half=2.1):
    """``n`` points evenly spaced along the boundary of [-half, half]^2 (corners included)."""
    u = np.arange(n) / n * 8 * half
    side = (u // (2 * half)).astype(int)
    # rounded to 12 decimals so that the midpoints of the sides are exactly 0: a start
    # 1e-16 off a bisector is repelled from it (figure 9), which is not what this shows
    o = np.round(u - side * 2 * half - half, 12)
    pts = np.empty((n, 2))
    pts[side == 0] = np.column_stack([o[side == 0], np.full((side == 0).sum(), -half)])
    pts[side == 1] = np.column_stack([np.full((side == 1).sum(), half), o[side == 1]])
    pts[side == 2] = np.column_stack([-o[side == 2], np.full((side == 2).sum(), half)])
    pts[side == 3] = np.column_stack([np.full((side == 3).sum(), -half), -o[side == 3]])
    return pts


def main(out_dir, *, rng=None, quick=False):
    n = 40 if quick else 80
    starts = square_starts(n)
    cases = {"square": np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]),
             "two points": np.array([[-1.0, 0.0], [1.0, 0.0]])}
    numbers = {"starts": starts}
    with plotting.style() as plt:
        fig, axes = plt.subplots(1, 2, figsize=(6.8, 3.4))
        for ax, (label, X) in zip(axes, cases.items()):
            s = np.concatenate([np.linspace(0, 10, 300), np.linspace(10.5, 100, 60)])
            r = sd.solve(sd.EmpiricalScore(X), starts, (0.0, 100.0), save_at=s[1:],
                         rtol=1e-10, atol=1e-12)
            path = np.concatenate([starts[None], r.ys])
            cls = classify(X, r.y, 1e-9)
            plotting.draw_voronoi(ax, X, (-2.3, 2.3, -2.3, 2.3), s=30)
            for j in range(n):
                ax.plot(path[:, j, 0], path[:, j, 1], lw=0.5, alpha=0.6,
                        color=plotting.KIND_COLORS[KIND_NAMES[cls.kind[j]]], zorder=2)
            for k, name in enumerate(KIND_NAMES):
                sel = cls.kind == k
                if sel.any():
                    ax.scatter(r.y[sel, 0], r.y[sel, 1], s=22, marker="o", facecolors="none",
                               edgecolors=plotting.KIND_COLORS[name], zorder=5,
                               label=f"end: {name} ({sel.sum()})")
            counts = cls.counts()
            ax.set_title(f"{label}: {counts['data']} at data, {counts['boundary']} on boundaries")
            ax.set_xlabel("$x_1$")
            ax.set_ylabel("$x_2$")
            ax.legend(loc="upper left", fontsize=6, bbox_to_anchor=(0.0, 1.0))
            numbers[label] = {"counts": counts, "ends": r.y, "kind": cls.kind,
                              "stratum": cls.stratum}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)
    sq, tp = numbers["square"]["counts"], numbers["two points"]["counts"]
    print(f"{NAME}: square {sq['data']} at data / {sq['boundary']} on boundaries; "
          f"two points {tp['data']} / {tp['boundary']} (of {n} starts)")
    return {"files": [str(p) for p in paths], "square": sq, "two_points": tp, "starts": n}
