"""``scoredyn verify --data``: a user's data set, loaded, checked and verified."""
import json

import numpy as np
import pytest

from scoredyn.apps import cli, datasets


@pytest.fixture
def points():
    g = np.random.default_rng(0)
    X = g.standard_normal((30, 3)) * 5 + 10          # off-centre, not unit size
    X[5] = X[3]                                       # an exact duplicate
    X[7] = X[2] * (1 + 1e-15)                         # closer than float64 can separate
    return X


def test_verify_on_a_users_npy(points, tmp_path, capsys):
    path = tmp_path / "mine.npy"
    np.save(path, points)
    out = tmp_path / "v.json"
    assert cli.main(["verify", "--quick", "--data", str(path), "--json", str(out),
                     "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "data: N = 30, d = 3" in text
    assert "1 duplicate and 1 near-duplicate points" in text and "28 distinct points" in text
    assert "6 of 6 claims verified" in text
    report = json.loads(out.read_text())
    assert report["data"]["distinct"] == 28 and len(report["claims"]) == 6
    assert report["data"]["separation"] == pytest.approx(
        min(np.linalg.norm(a - b) for i, a in enumerate(np.unique(points, axis=0))
            for b in np.unique(points, axis=0)[i + 1:] if np.linalg.norm(a - b) > 1e-9))


@pytest.mark.parametrize("fmt", ["npz", "csv", "txt"])
def test_formats_load_the_same_points(points, tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    if fmt == "npz":
        np.savez(path, train=points, labels=np.arange(30))
        got = datasets.load(str(path), "train")
    elif fmt == "csv":
        np.savetxt(path, points, delimiter=",", header="a,b,c", comments="", fmt="%.17g")
        got = datasets.load(str(path))
    else:
        np.savetxt(path, points, fmt="%.17g")
        got = datasets.load(str(path))
    np.testing.assert_array_equal(got, points)          # 17 significant digits round-trip


def _write(tmp_path, name, content):
    p = tmp_path / name
    if isinstance(content, str):
        p.write_text(content)
    elif name.endswith(".npz"):
        np.savez(p, **content)
    else:
        np.save(p, content)
    return str(p)


@pytest.mark.parametrize("name, content, key, message", [
    ("none.npy", None, None, "no such file"),
    ("vec.npy", np.arange(5.0), None, "must hold a 2-D numeric array"),
    ("str.npy", np.array([["a", "b"]]), None, "must hold a 2-D numeric array"),
    ("nan.npy", np.array([[1.0, np.nan]]), None, "finite"),
    ("two.npz", {"a": np.ones((2, 2)), "b": np.ones((2, 2))}, None, "holds 2 arrays (a, b); name one with --key"),
    ("two.npz", {"a": np.ones((2, 2))}, "b", "--key 'b' is not in"),
    ("words.csv", "a,b\nc,d\ne,f\n", None, "is not a table of numbers"),
    ("d.npy", np.ones((3, 2)), "a", "--key applies to .npz archives"),
    ("d.json", "{}", None, "unknown format '.json'"),
    ("broken.npy", "not numpy", None, "could not be read"),
    ("one.npy", np.ones((3, 2)), None, "holds 1 distinct point(s)"),
    # a ragged row is an error, not a header to skip (the second line alone was read as data)
    ("ragged.csv", "1,2\n3\n4,5\n", None, "the number of columns changed from 2 to 1"),
])
def test_bad_data_files_are_named(tmp_path, capsys, name, content, key, message):
    path = str(tmp_path / name) if content is None else _write(tmp_path, name, content)
    argv = ["verify", "--quick", "--data", path] + (["--key", key] if key else [])
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("magnitude", [2.0**-664, 1.0, 2.0**664])     # ~1e-200, 1, ~1e200
def test_prepare_at_any_magnitude(points, magnitude):
    """The same points scaled by a power of two down to ~1e-200 and up to ~1e200 give the
    same distinct points at unit size, bit for bit, and reports scaled exactly with them
    (squared distances near 1e200 overflowed: every pair was a near duplicate and the data
    one point)."""
    ref, ref_report = datasets.prepare(points)
    U, report = datasets.prepare(points * magnitude)
    assert report.distinct == ref_report.distinct == 28
    np.testing.assert_array_equal(U, ref)
    assert report.radius == ref_report.radius * magnitude
    assert report.separation == ref_report.separation * magnitude
    assert report.scale == ref_report.scale / magnitude


def test_verify_on_collinear_points(tmp_path, capsys):
    """Ten evenly spaced points on a line (integers): every claim holds.  Claim 6's trend is a
    mean over 60 starts per c; one start landing near a point at c = 0.1 (0.02 after 0.00 at
    c = 0.01) had failed it, a rise well inside two binomial standard errors (0.036)."""
    path = tmp_path / "line.npy"
    np.save(path, np.arange(20).reshape(10, 2))
    assert cli.main(["verify", "--quick", "--data", str(path), "--no-progress"]) == 0
    assert "6 of 6 claims verified" in capsys.readouterr().out


def test_key_without_data(capsys):
    with pytest.raises(SystemExit):
        cli.main(["verify", "--quick", "--key", "x"])
    assert "--key names an array of the --data archive" in capsys.readouterr().err


def test_digits_offline():
    pytest.importorskip("sklearn")
    X = datasets.load("digits")
    assert X.shape == (1797, 64) and X.min() == 0.0 and X.max() == 1.0
    U, report = datasets.prepare(X)
    assert report.distinct == len(U) and report.separation > 0 and report.scale == 0.5
