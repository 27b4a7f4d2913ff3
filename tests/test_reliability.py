"""No silent wrong answer: bad, extreme and faulty inputs at the public entry points.

Table-driven, one table per entry point: each bad input with the error it must raise and
a message that names the parameter; each extreme input with its exact answer.
"""
import io
import time
from contextlib import redirect_stderr

import numpy as np
import pytest

import scoredyn as sd
from scoredyn import cli, coldstart

from .test_ode import authors_data

# -- probability_flow: the arguments solve checks, and the outcome -----------------------------

FLOW_BAD = [
    (dict(rtol=0.0), ValueError, r"`rtol` must be positive; got 0.0"),
    (dict(atol=0.0), ValueError, r"`atol` must be positive; got 0.0"),
    (dict(rtol=np.nan), ValueError, r"`rtol` must be finite; got nan"),
    (dict(atol=-1e-9), ValueError, r"`atol` must be positive"),
    (dict(method="rk4", h=-0.1), ValueError, r"`h` must be positive; got -0.1"),
    (dict(method="rk4", h=np.inf), ValueError, r"`h` must be finite; got inf"),
    (dict(method="rk4"), ValueError, r"`h` \(the largest step\) is required"),
    (dict(max_steps=0), ValueError, r"`max_steps` must be a positive integer; got 0"),
    (dict(max_steps=2.5), ValueError, r"`max_steps` must be a positive integer; got 2.5"),
    (dict(max_steps=True), ValueError, r"`max_steps` must be a positive integer; got True"),
    (dict(method="rk9"), ValueError, r"`method` must be one of"),
    (dict(t_span=(0.01, 1.0)), ValueError, r"`t_span` must satisfy t0 > t1 > 0"),
    (dict(x_T=np.zeros((2, 3))), ValueError, r"`x_T`"),
]


@pytest.mark.parametrize("bad,exc,match", FLOW_BAD, ids=[m[:30] for _, _, m in FLOW_BAD])
def test_probability_flow_refuses(bad, exc, match):
    args = dict(x_T=np.zeros((2, 2)), t_span=(1.0, 0.01))
    args.update(bad)
    field = sd.EmpiricalScore(authors_data())
    with pytest.raises(exc, match=match):
        sd.probability_flow(field, sd.VE(), args.pop("x_T"), args.pop("t_span"), **args)


@pytest.mark.parametrize("kw", [dict(max_steps=2), dict(method="rk4", h=0.01, max_steps=5)])
def test_probability_flow_never_returns_a_state_part_of_the_way(kw):
    field = sd.EmpiricalScore(authors_data())
    with pytest.raises(sd.IntegrationError, match=r"2 of 2 trajectories did not reach t = 0.01 "
                                                  r"\(trajectory 0: The number of steps"):
        sd.probability_flow(field, sd.VE(), np.ones((2, 2)), (1.0, 0.01), **kw)


def test_probability_flow_reaches_its_end_exactly():
    """The span is (-t0, -t1) in the integrator's time, negative: the last step must land
    on -t1 (s + (s1 - s) rounds below s1 there), not leave a step below its resolution."""
    field = sd.EmpiricalScore(authors_data())
    x = np.random.default_rng(20).standard_normal((200, 2))
    y = sd.probability_flow(field, sd.VE(), x, (3.7, 0.01), rtol=1e-7)
    assert np.all(np.isfinite(y))


# -- the first compile says so ---------------------------------------------------------------

class _Uncompiled:
    signatures = []


def test_a_slow_first_compile_is_announced_once(monkeypatch):
    monkeypatch.setattr(coldstart, "NOTICE_AFTER_S", 0.05)
    monkeypatch.setattr(coldstart, "_said", set())
    err = io.StringIO()
    with redirect_stderr(err):
        for _ in range(2):
            with coldstart.compiling("test", _Uncompiled()):
                time.sleep(0.3)
    assert err.getvalue().count("scoredyn: compiling the test kernels on first use") == 1


def test_a_compiled_kernel_is_not_announced(monkeypatch):
    class Compiled:
        signatures = [("int64",)]
    monkeypatch.setattr(coldstart, "NOTICE_AFTER_S", 0.01)
    monkeypatch.setattr(coldstart, "_said", set())
    err = io.StringIO()
    with redirect_stderr(err):
        with coldstart.compiling("test", Compiled()):
            time.sleep(0.1)
    assert err.getvalue() == ""


def test_compile_command_warms_every_group(capsys):
    assert cli.main(["compile", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for group in ("fields", "voronoi and nearest neighbours", "solve, per trajectory",
                  "solve, SIMD lanes"):
        assert group in out
    assert "compiled (or loaded from the cache) every CPU kernel" in out


def test_import_loads_no_compiler():
    """``import scoredyn`` loads neither numba, scipy nor matplotlib (checked in a fresh
    interpreter: this one has them already)."""
    import subprocess
    import sys
    code = ("import sys, scoredyn; "
            "print(sorted(m for m in ('numba', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
