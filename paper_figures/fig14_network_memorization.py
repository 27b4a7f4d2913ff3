"""Figure 14 — a trained score network next to the optimum (the memorization paper's 2-D study).

N = 20 data from N(0, I_2); MLP score (SiLU, depth 2, Fourier embedding 8), VE, sigma in
[1e-3, 10], trained by denoising score matching (full batch, Adam, lr 1e-3) with the
Tikhonov penalty lambda.  Samples: 500 starts, the log-time ODE (RK4, h = 0.05) from
sigma = 10 to 1e-3.  Memorization: the 1/3 ratio test and "within 1e-2 of a training point",
each with a 95 % percentile-bootstrap interval over the samples.

The effect needs training far past the loss plateau: at width 128 and lambda = 0 the ratio
test stays at 12-15 % up to 3*10^4 steps and reaches ~55 % at 10^5 (the earlier version of this
figure stopped at 3*10^4 steps, where every panel was flat).  Panels, all at 10^5 steps:
against the penalty lambda (width 128), against the training steps (width 128, lambda = 0,
one network measured at checkpoints), against the width (lambda = 0).  The network at
(width 128, lambda 0, 10^5 steps) is one training, shown in all three panels.  The exact
optimum memorizes 100 %.  Width 256 is left out for its cost (about 4x width 128's); measured
once at 10^5 steps it memorized less than width 128 (34 % [28, 39] against 56 % [50, 62] by
the ratio test): at a fixed step count the trend in width is not monotone.

Training the networks takes 4 to 7 minutes on one core, so the package ships them
(``fig14_networks/``, plain :meth:`ScoreMLP.save` archives, about 1 MB, with a manifest of how
they were trained) and the figure loads them by default; ``retrain=True``
(``scoredyn figures --retrain``) trains them anew from the figure's seed and writes them
beside the figure.  The figure's title says which networks it shows.  The samples, the
integration and the bootstrap are computed on every run either way.
"""
import json
import pathlib

import numpy as np
from matplotlib.ticker import NullFormatter

import scoredyn as sd
from scoredyn.apps import plotting
from scoredyn.fields.network import ScoreMLP
from scoredyn.memorization import bootstrap_ci, memorization_ratio

NAME = "fig14_network_memorization"
SIGMA_MIN, SIGMA_MAX = 1e-3, 10.0
N_BOOTSTRAP = 1000
#: the shipped networks and their manifest (``training.json``)
NETWORKS = pathlib.Path(__file__).with_name("fig14_networks")
TRAINING = {"depth": 2, "n_fourier": 8, "batch": 256, "lr": 1e-3}


def checkpoint_name(width, lam, steps):
    """File name of the network of ``width`` trained with penalty ``lam`` for ``steps``."""
    return f"width{width}_lambda{lam:g}_steps{steps}.npz"


def shipped_manifest():
    """The manifest of the shipped networks (``None`` where they are not installed)."""
    path = NETWORKS / "training.json"
    return json.loads(path.read_text()) if path.exists() else None


def _measure(field, X, y0, rng):
    """``((ratio, low, high), (within, low, high))`` for the samples of ``field``."""
    r = sd.solve(field, y0, (-np.log(SIGMA_MAX), -np.log(SIGMA_MIN)), method="rk4", h=0.05)
    ratio = memorization_ratio(r.y, X, n_bootstrap=N_BOOTSTRAP, rng=rng)
    hit = (sd.voronoi.nearest(X, r.y)[2] < 1e-2).astype(float)
    return ((ratio.value, ratio.ci_low, ratio.ci_high),
            (float(hit.mean()), *bootstrap_ci(hit, n_bootstrap=N_BOOTSTRAP, rng=rng)))


def main(out_dir, *, rng=None, quick=False, retrain=False):
    rng = np.random.default_rng(rng)
    X = np.random.RandomState(1).randn(20, 2)        # the authors' data (their global seed 1)
    y0 = rng.standard_normal((150 if quick else 500, 2)) * 3
    width = 32 if quick else 128
    lambdas = [0.0, 1e-1] if quick else [0.0, 1e-3, 1e-2, 1e-1]
    widths = [8, 32] if quick else [32, 64, 128]
    checkpoints = [500, 1500] if quick else [3000, 10_000, 30_000, 100_000]
    steps = checkpoints[-1]
    seed = int(rng.integers(2**31))
    mrng = np.random.default_rng(seed + 7)           # the bootstrap's resamples

    manifest = None if quick or retrain else shipped_manifest()
    if manifest is not None:
        source = f"shipped networks (trained with seed {manifest['seed']})"
    else:
        source = f"networks trained in this run (seed {seed})"
    saved = pathlib.Path(out_dir) / "fig14_networks" if retrain else None

    def train(w, lam, stops):
        """A network trained in stages ending at ``stops`` (or its shipped checkpoints);
        its measurement at each."""
        out, done = [], 0
        net = None if manifest is not None else ScoreMLP(
            2, width=w, depth=TRAINING["depth"], n_fourier=TRAINING["n_fourier"], rng=seed)
        for total in stops:
            if manifest is not None:
                path = NETWORKS / checkpoint_name(w, lam, total)
                try:
                    net = ScoreMLP.load(path)
                except (OSError, ValueError) as exc:
                    raise RuntimeError(f"{NAME}: the shipped network {path.name} cannot be "
                                       f"loaded ({exc}); reinstall scoredyn, or train the "
                                       f"networks anew with `--retrain`") from None
            else:
                net.fit(X, steps=total - done, batch=TRAINING["batch"], lr=TRAINING["lr"], c=lam,
                        sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rng=seed + total)
                done = total
                if saved is not None:
                    saved.mkdir(parents=True, exist_ok=True)
                    net.save(saved / checkpoint_name(w, lam, total))
            out.append(_measure(net, X, y0, mrng))
        return out

    by_steps = train(width, 0.0, checkpoints)          # (width, lambda 0): every panel's point
    by_lambda = [by_steps[-1] if lam == 0.0 else train(width, lam, [steps])[0]
                 for lam in lambdas]
    by_width = [by_steps[-1] if w == width else train(w, 0.0, [steps])[0] for w in widths]
    exact = _measure(sd.EmpiricalScore(X), X, y0, mrng)
    if saved is not None:
        configs = sorted({(width, 0.0, c) for c in checkpoints} | {(width, l, steps) for l in lambdas}
                         | {(w, 0.0, steps) for w in widths})
        (saved / "training.json").write_text(json.dumps({
            "seed": seed, "data": "numpy.random.RandomState(1).randn(20, 2)",
            "sigma_min": SIGMA_MIN, "sigma_max": SIGMA_MAX, **TRAINING,
            "networks": {checkpoint_name(*c): {"width": c[0], "lambda": c[1], "steps": c[2]}
                         for c in configs}}, indent=1))
    with plotting.style() as plt:
        fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.5))
        fig.subplots_adjust(wspace=0.4)
        panels = ((axes[0], [max(l, 1e-4) for l in lambdas], by_lambda,
                   "penalty $\\lambda$ (0 drawn at $10^{-4}$)", [f"{l:g}" for l in lambdas]),
                  (axes[1], checkpoints, by_steps, "training steps", None),
                  (axes[2], widths, by_width, "width", None))
        for ax, xs, vals, label, ticks in panels:
            for i, (marker, text) in enumerate((("o-", "ratio test $< 1/3$"),
                                                ("s--", "within $10^{-2}$"))):
                v = 100 * np.array([m[i] for m in vals])
                ax.errorbar(xs, v[:, 0], yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]],
                            fmt=marker, ms=3, capsize=2, label=text)
            ax.axhline(100 * exact[0][0], color="k", lw=0.6, ls=":", label="exact optimum")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xticks(xs, ticks or [f"{x:g}" for x in xs], rotation=45, fontsize=6)
            ax.set_xlabel(label)
            ax.set_ylim(-3, 105)
        axes[0].set_ylabel("memorized samples (%), 95 % intervals")
        axes[0].legend(fontsize=5.5, loc="center right")
        fig.suptitle(f"N = 20, {steps:g} training steps (lambda and width panels); {source}",
                     fontsize=7)
        numbers = {"lambdas": lambdas, "by_lambda": by_lambda, "widths": widths,
                   "by_width": by_width, "steps": checkpoints, "by_steps": by_steps,
                   "exact": exact, "train_steps": steps, "width_for_lambda_and_steps": width,
                   "n_bootstrap": N_BOOTSTRAP, "networks": source}
        paths = plotting.save(fig, out_dir, NAME, numbers)
        plt.close(fig)

    def fmt(xs, vals):
        return ", ".join(f"{x:g}: {v[0][0]:.2f} [{v[0][1]:.2f}, {v[0][2]:.2f}]"
                         for x, v in zip(xs, vals))
    print(f"{NAME}: ratio-test memorization [95 % interval] vs lambda {fmt(lambdas, by_lambda)}"
          f"; vs steps {fmt(checkpoints, by_steps)}; vs width {fmt(widths, by_width)}"
          f"; exact {exact[0][0]:.2f}; {source}")
    return {"files": [str(p) for p in paths], "by_lambda": by_lambda, "by_steps": by_steps,
            "by_width": by_width, "exact": exact, "networks": source}
