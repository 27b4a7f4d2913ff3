"""Slow, obviously correct references (dense Q x N, direct differences, float64).

Every fast path in scoredyn is compared with these.
"""
import mpmath
import numpy as np
from scipy.special import logsumexp, softmax


def logits(x, data, sigma, alpha=1.0):
    """l[q, i] = -|x_q - alpha x_i|^2 / (2 sigma^2), shape (Q, N)."""
    diff = x[:, None, :] - alpha * data[None, :, :]
    return -np.sum(diff * diff, axis=-1) / (2.0 * sigma * sigma)


def weights(x, data, sigma, alpha=1.0):
    return softmax(logits(x, data, sigma, alpha), axis=1)


def denoise(x, data, sigma, alpha=1.0):
    return weights(x, data, sigma, alpha) @ data


def score(x, data, sigma, alpha=1.0, c=0.0):
    return (alpha * denoise(x, data, sigma, alpha) - x) / (sigma**2 + c)


def log_density(x, data, sigma, alpha=1.0):
    n, d = data.shape
    return (logsumexp(logits(x, data, sigma, alpha), axis=1) - np.log(n)
            - 0.5 * d * np.log(2 * np.pi * sigma**2))


def empirical_bayes_score(x, data, sigma, tau, alpha=1.0):
    """The authors' code: w~_i = exp(l_i - max(logsumexp(l), log tau))."""
    l = logits(x, data, sigma, alpha)
    lse = logsumexp(l, axis=1, keepdims=True)
    wt = np.exp(l - np.maximum(lse, np.log(tau)))
    return (alpha * wt @ data - wt.sum(1, keepdims=True) * x) / sigma**2


def jacobian(x, data, sigma, alpha=1.0):
    """(alpha / sigma^2) Cov_w, shape (Q, d, d)."""
    w = weights(x, data, sigma, alpha)
    mean = w @ data
    diff = data[None, :, :] - mean[:, None, :]
    return alpha / sigma**2 * np.einsum("qi,qij,qik->qjk", w, diff, diff)


def two_nearest(x, data, alpha=1.0):
    d2 = np.sum((x[:, None, :] - alpha * data[None]) ** 2, axis=-1)
    order = np.argsort(d2, axis=1, kind="stable")
    return order[:, 0], order[:, 1] if data.shape[0] > 1 else None


def mp_weights(y, data, sigma, dps=60):
    """Weights of one query to ``dps`` digits, from the exact binary values."""
    with mpmath.workdps(dps):
        s2 = mpmath.mpf(float(sigma)) ** 2
        ls = []
        for xi in data:
            acc = mpmath.mpf(0)
            for a, b in zip(y, xi):
                t = mpmath.mpf(float(a)) - mpmath.mpf(float(b))
                acc += t * t
            ls.append(-acc / (2 * s2))
        m = max(ls)
        e = [mpmath.exp(v - m) for v in ls]
        tot = mpmath.fsum(e)
        return np.array([float(v / tot) for v in e])
