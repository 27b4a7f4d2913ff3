"""Hypothesis strategies for data sets, queries and noise levels (bounded, small shapes)."""
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

finite = st.floats(-5.0, 5.0, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def problems(draw, max_n=30, max_d=6, max_q=8):
    """(data (N, d), x (Q, d), sigma, alpha) with moderate sigma."""
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    q = draw(st.integers(1, max_q))
    data = draw(hnp.arrays(np.float64, (n, d), elements=finite))
    x = draw(hnp.arrays(np.float64, (q, d), elements=finite))
    sigma = draw(st.floats(0.05, 20.0))
    alpha = draw(st.sampled_from([1.0, 0.3, 0.9, 1.7]))
    return data, x, sigma, alpha
