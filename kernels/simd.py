"""The lane solver's plane loops with explicit vectors: lanes held in registers across the data.

:func:`odeint_lanes._two_pass_sums` forms the softmax of 64 lanes in loops over the data
points, each with an inner loop over the lanes that LLVM vectorises.  In the paper's
setting (d = 2, N = 20) that inner loop runs 8 vectors per data point, and every vector
loads and stores the lane's running sums, and computes one exp: a chain of 14 dependent
fused multiply-adds per iteration, which the core overlaps with too few others.  That loop
ran at 1.9x the exp's own throughput (AMD EPYC Zen 5, one core: 4.9-5.1 ns per 8 lanes and
data point, against 2.6 ns for 8 exps in :func:`mathfn.exp_sum`, whose loop LLVM
interleaves four wide); holding the sums in registers alone gained 7 %, interleaving
independent exps the rest.

Here the loops over the data run inside a block of ``BLOCK`` lanes (``VECTORS`` registers of
``WIDTH`` doubles) whose sums, minima, shifts and thresholds stay in registers from the
first data point to the last, and each iteration of the weights' loop takes ``UNROLL``
data points: ``VECTORS x UNROLL`` independent exps that the scheduler interleaves.  numba
has no vector type, so the two loops are written as LLVM IR (:func:`plane_distances`,
:func:`plane_sums`); each lane's operations, and their order, are exactly those of the
numba loops they replace (same flags: no contraction but the exp's own), so the results
are the same bits (tests/test_kernels.py holds both the exp and the sums to that).

Developers: numba's cache keys a kernel on its own file, so after changing this one delete
``odeint_lanes``'s entries under ``kernels/__pycache__`` (or use a fresh
``NUMBA_CACHE_DIR``).
"""
from llvmlite import ir
from numba import config, types
from numba.core import cgutils
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic

from .config import FASTMATH, FASTMATH_STRICT
from .mathfn import _LN2_HI, _LN2_LO, _LOG2E, EXP_C, EXP_FLUSH


def _compiled_features():
    """The CPU features numba compiles for: ``NUMBA_CPU_FEATURES`` if set, else the host's
    (``numba.core.codegen``'s rule, which also honours ``NUMBA_ENABLE_AVX``)."""
    return (config.CPU_FEATURES if config.CPU_FEATURES is not None
            else get_host_cpu_features()).split(",")


#: doubles per vector register: 8 where the code is compiled with AVX-512, else 4
WIDTH = 8 if "+avx512f" in _compiled_features() else 4
#: vectors per block, and data points per iteration of :func:`plane_sums`: VECTORS x UNROLL
#: independent exps in flight.  Measured in the lane solver (N = 20, Q = 10^4, gl-dopri5,
#: Zen 5, 2 cores, alternating runs): 11.6-12.2 ns per evaluation with 2 x 4, 11.8-12.7 with
#: 4 x 2, 12.2-13.1 with 2 x 2, 12.2-13.2 with 4 x 1; 4 x 4 and 2 x 8 were slower.  Compiled
#: without AVX-512 (``NUMBA_CPU_FEATURES``, same machine): 19.8-19.9 ns with 2 x 4, 20.9-21.5
#: with 2 x 2, 1 x 4 and 1 x 2 (the numba loops, before the shared queue: 24.4-24.6).
VECTORS = 2
UNROLL = 4
#: lanes per block of :func:`plane_distances` and :func:`plane_sums`
BLOCK = WIDTH * VECTORS

_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_VEC = ir.VectorType(_F64, WIDTH)
_IVEC = ir.VectorType(_I64, WIDTH)
#: the flags of the loops replaced (config.FASTMATH) without ``reassoc``: every sum is
#: written in the order those loops add, so there is nothing to reassociate
_FLAGS = tuple(sorted(FASTMATH - {"reassoc"}))
#: the exp's flags (config.FASTMATH_STRICT): its contractions are the explicit fmas below
_EXP_FLAGS = tuple(sorted(FASTMATH_STRICT))


def _splat(x):
    return ir.Constant(_VEC, [float(x)] * WIDTH)


def _fma(builder, a, b, c):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC] * 3),
                                        f"llvm.fma.v{WIDTH}f64")
    return builder.call(fn, [a, b, c])


def vector_exp_nonpos(builder, x):
    """:func:`mathfn.exp_nonpos` of each element of the vector ``x``, bit for bit.

    The same steps: flush below ``EXP_FLUSH`` (and NaN) to 0, ``n = floor(x log2 e + 1/2)``,
    the Cody-Waite remainder, Horner's scheme for the degree-11 polynomial and ``2^n`` from
    its exponent bits.  LLVM contracts each ``a * b + c`` of the scalar function
    (``contract``) into one fused multiply-add; here they are written as such.
    """
    small = builder.fcmp_unordered("<", x, _splat(EXP_FLUSH))     # not (x >= EXP_FLUSH)
    xc = builder.select(small, _splat(EXP_FLUSH), x)
    floor = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC]),
                                           f"llvm.floor.v{WIDTH}f64")
    n = builder.call(floor, [_fma(builder, xc, _splat(_LOG2E), _splat(0.5))])
    r = _fma(builder, n, _splat(-_LN2_HI), xc)
    r = _fma(builder, n, _splat(-_LN2_LO), r)
    p = _splat(EXP_C[-1])
    for c in reversed(EXP_C[:-1]):
        p = _fma(builder, p, r, _splat(c))
    p = _fma(builder, p, r, _splat(1.0))
    p = _fma(builder, p, r, _splat(1.0))
    bits = builder.shl(builder.add(builder.fptosi(n, _IVEC), ir.Constant(_IVEC, [1023] * WIDTH)),
                       ir.Constant(_IVEC, [52] * WIDTH))
    v = builder.fmul(p, builder.bitcast(bits, _VEC), flags=_EXP_FLAGS)
    return builder.select(small, _splat(0.0), v)


def _at(builder, base, index):
    """A pointer to the vector at ``base[index]``."""
    return builder.bitcast(builder.gep(base, [index]), _VEC.as_pointer())


def _load(builder, base, index):
    return builder.load(_at(builder, base, index), align=8)


def _store(builder, value, base, index):
    builder.store(value, _at(builder, base, index), align=8)


def _broadcast(builder, x):
    v = builder.insert_element(ir.Constant(_VEC, ir.Undefined), x, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(v, ir.Constant(_VEC, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), [0] * WIDTH))


def _data_point(builder, xt, n, j):
    """Data point ``j`` of the (2, N) data at ``xt``, each coordinate broadcast to a vector."""
    return (_broadcast(builder, builder.load(builder.gep(xt, [j]))),
            _broadcast(builder, builder.load(builder.gep(xt, [builder.add(j, n)]))))


def _loop(builder, n, carried, body, name):
    """``for j in range(n)`` with the vectors ``carried`` as loop-carried values.

    ``body(j, values)`` emits one iteration and returns the new values (it may branch; the
    block it ends in flows to the next iteration).  Returns the values after the loop.
    """
    start = builder.block
    head = builder.append_basic_block(name + ".head")
    step = builder.append_basic_block(name + ".body")
    done = builder.append_basic_block(name + ".done")
    builder.branch(head)
    builder.position_at_end(head)
    j = builder.phi(_I64)
    j.add_incoming(ir.Constant(_I64, 0), start)
    values = [builder.phi(v.type) for v in carried]
    for phi, v in zip(values, carried):
        phi.add_incoming(v, start)
    builder.cbranch(builder.icmp_signed("<", j, n), step, done)
    builder.position_at_end(step)
    new = body(j, values)
    end = builder.block
    j.add_incoming(builder.add(j, ir.Constant(_I64, 1)), end)
    for phi, v in zip(values, new):
        phi.add_incoming(v, end)
    builder.branch(head)
    builder.position_at_end(done)
    return values


def _when(builder, cond, values, then, name):
    """``then(values)`` if ``cond``, else ``values`` (merged by phis after the branch)."""
    start = builder.block
    yes = builder.append_basic_block(name + ".then")
    join = builder.append_basic_block(name + ".join")
    builder.cbranch(cond, yes, join)
    builder.position_at_end(yes)
    new = then(values)
    end = builder.block
    builder.branch(join)
    builder.position_at_end(join)
    merged = []
    for old, v in zip(values, new):
        phi = builder.phi(old.type)
        phi.add_incoming(old, start)
        phi.add_incoming(v, end)
        merged.append(phi)
    return merged


def _arrays_ok(*arrays):
    return all(isinstance(a, types.Array) and a.dtype == types.float64 and a.layout == "C"
               for a in arrays)


@intrinsic
def plane_distances(typingctx, XT, Y, b0, dist, dmin):
    """``dist[j, b] = |Y[:, b] - XT[:, j]|^2`` and ``dmin[b]`` their minimum over j (NaN
    distances never taken), for the ``BLOCK`` lanes ``b0 <= b < b0 + BLOCK``.

    The first pass of :func:`odeint_lanes._two_pass_sums` in the plane (``t0 * t0 + t1 * t1``
    of the coordinate differences, ``dmin = v if v < dmin else dmin`` from ``inf``), with
    the lanes' coordinates and minima in registers.  ``XT`` (2, N), ``Y`` (2, B),
    ``dist`` (N, B), ``dmin`` (B,): C-ordered float64.
    """
    if not (_arrays_ok(XT, Y, dist, dmin) and isinstance(b0, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        xt, y, dst, dm = (context.make_array(signature.args[i])(context, builder, args[i])
                          for i in (0, 1, 3, 4))
        b0v = args[2]
        n = builder.extract_value(xt.shape, 1)
        lanes = builder.extract_value(y.shape, 1)
        cols = [builder.add(b0v, ir.Constant(_I64, WIDTH * k)) for k in range(VECTORS)]
        y0 = [_load(builder, y.data, c) for c in cols]
        y1 = [_load(builder, y.data, builder.add(lanes, c)) for c in cols]

        def body(j, low):
            a0, a1 = _data_point(builder, xt.data, n, j)
            row = builder.mul(j, lanes)
            new = []
            for k, c in enumerate(cols):
                t0 = builder.fsub(y0[k], a0, flags=_FLAGS)
                t1 = builder.fsub(y1[k], a1, flags=_FLAGS)
                v = builder.fadd(builder.fmul(t0, t0, flags=_FLAGS),
                                 builder.fmul(t1, t1, flags=_FLAGS), flags=_FLAGS)
                _store(builder, v, dst.data, builder.add(row, c))
                new.append(builder.select(builder.fcmp_ordered("<", v, low[k]), v, low[k]))
            return new

        low = _loop(builder, n, [_splat(float("inf"))] * VECTORS, body, "plane_distances")
        for k, c in enumerate(cols):
            _store(builder, low[k], dm.data, c)
        return context.get_dummy_value()

    return types.void(XT, Y, b0, dist, dmin), codegen


@intrinsic
def plane_sums(typingctx, XT, dist, dmin, inv, thr, b0, lsum, o0, o1):
    """The second pass of :func:`odeint_lanes._two_pass_sums` in the plane with every ``inv``
    finite, for the ``BLOCK`` lanes ``b0 <= b < b0 + BLOCK``: for each data point j,
    ``w = exp_nonpos((dmin[b] - dist[j, b]) inv[b])``, ``lsum[b] += w``, ``o0[b] += w XT[0, j]``,
    ``o1[b] += w XT[1, j]``, in the order of j.

    A data point is skipped when every lane of the block has ``dist > thr``: ``thr`` is
    ``dmin + 709 / inv``, so each of those weights is exactly 0 and adding it changes no
    sum (the numba loop skips at the same rule across all 64 lanes).  ``XT`` (2, N),
    ``dist`` (N, B), the rest (B,): C-ordered float64.
    """
    if not (_arrays_ok(XT, dist, dmin, inv, thr, lsum, o0, o1)
            and isinstance(b0, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        xt, dst, dm, iv, th, ls, s0, s1 = (
            context.make_array(signature.args[i])(context, builder, args[i])
            for i in (0, 1, 2, 3, 4, 6, 7, 8))
        b0v = args[5]
        n = builder.extract_value(xt.shape, 1)
        lanes = builder.extract_value(dst.shape, 1)
        cols = [builder.add(b0v, ir.Constant(_I64, WIDTH * k)) for k in range(VECTORS)]
        shift = [_load(builder, dm.data, c) for c in cols]
        scale = [_load(builder, iv.data, c) for c in cols]
        cut = [_load(builder, th.data, c) for c in cols]
        sums = [_load(builder, out.data, c) for out in (ls, s0, s1) for c in cols]

        def weigh(js, acc):
            """The data points ``js`` (ascending), unless every lane is beyond ``thr``."""
            dj = [[_load(builder, dst.data, builder.add(builder.mul(j, lanes), c)) for c in cols]
                  for j in js]
            live = None
            for row in dj:
                for k, v in enumerate(row):     # not (dist > thr): NaN distances are live
                    m = builder.bitcast(builder.fcmp_unordered("<=", v, cut[k]),
                                        ir.IntType(WIDTH))
                    live = m if live is None else builder.or_(live, m)

            def add(acc):
                ws = [[vector_exp_nonpos(builder, builder.fmul(
                    builder.fsub(shift[k], v, flags=_FLAGS), scale[k], flags=_FLAGS))
                    for k, v in enumerate(row)] for row in dj]
                new = list(acc)
                for j, row in zip(js, ws):
                    a0, a1 = _data_point(builder, xt.data, n, j)
                    for k, w in enumerate(row):
                        new[k] = builder.fadd(new[k], w, flags=_FLAGS)
                        for i, a in ((1, a0), (2, a1)):
                            new[i * VECTORS + k] = builder.fadd(
                                new[i * VECTORS + k], builder.fmul(w, a, flags=_FLAGS),
                                flags=_FLAGS)
                return new

            return _when(builder, builder.icmp_unsigned("!=", live, ir.Constant(
                ir.IntType(WIDTH), 0)), acc, add, "plane_sums.weigh")

        def step(g, acc):
            j = builder.mul(g, ir.Constant(_I64, UNROLL))
            return weigh([builder.add(j, ir.Constant(_I64, t)) for t in range(UNROLL)], acc)

        groups = builder.sdiv(n, ir.Constant(_I64, UNROLL))
        sums = _loop(builder, groups, sums, step, "plane_sums")
        done = builder.mul(groups, ir.Constant(_I64, UNROLL))
        sums = _loop(builder, builder.sub(n, done), sums,
                     lambda t, acc: weigh([builder.add(done, t)], acc), "plane_sums.tail")
        for i, out in enumerate((ls, s0, s1)):
            for k, c in enumerate(cols):
                _store(builder, sums[i * VECTORS + k], out.data, c)
        return context.get_dummy_value()

    return types.void(XT, dist, dmin, inv, thr, b0, lsum, o0, o1), codegen
