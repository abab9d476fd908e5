"""Compiled step loop of the cascade simulator (:func:`feeds.cascade.model.simulate`).

One numba kernel steps the model of :mod:`feeds.cascade.model` (triggers on the mark -> engine
-> insurance fund -> flow and impact -> depth, in that order, every ``dt_s``). The venue
formulas are not here: liquidation and bankruptcy prices are precomputed in Python by the risk
core into the inventory bins and the leverage-rebuild table; the kernel only does arithmetic
on float64 arrays (numpy and math, no Python objects).

ADL stays in Python (it runs :func:`risk.adl.run_adl` on position objects): when the insurance
fund is exhausted with a backlog, :func:`step_loop` returns the step index; ``simulate`` runs
the ADL on the arrays, writes the state back and calls the kernel again with ``resume=True``,
which continues at stage 4 (flow and impact) of that same step.

De-risking (``cfg[C_DRK]`` > 0): a share of the exogenous flow closes live positions of the side
it trades against, pro rata over that side's bins. The kernel keeps a scale per side (``st[S_SCL_L]``,
``st[S_SCL_S]``: a bin's quantity is its stored value times the scale) so a pro-rata close costs one
multiplication per step; the scale is folded into the bins before the state goes back to Python
(ADL, end of run). With de-risking off the scale stays exactly 1 and every result is the same as
without it.

New positions (leverage rebuilding, momentum shorts) open through :func:`_open`: a bin inside
the range the mark has already swept (longs at or above the trigger index, shorts below it;
those bins are always empty) moves the index so the new bin is live; a leverage whose level is
not on the safe side of the current mark is left out.

State is passed in three arrays, indexed by the constants below: ``cfg`` (constants of the
run), ``st`` (float state, updated in place) and ``ist`` (the two trigger indices). The search
helpers are CPython's ``bisect_left`` / ``bisect_right`` line for line, so ties (a mark exactly
on a bin level) and NaN behave as in the Python loop this replaced.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# cfg: constants of one run
C_X0, C_D0, C_DMIN, C_AM, C_AF, C_AW, C_DECAY, C_G, C_DELTA, C_CAPK, C_TAUFRAC, C_BUYK, C_EXCK, C_REBUILD, \
    C_GRIDLO, C_GRIDSTEP, C_KAPPA, C_TAUD, C_DT, C_ADL, C_DRK, C_DRKOI, C_MOMSHORT = range(23)
N_CFG = 23
# st: float state (model variables, then the running totals of the summary/inventory)
S_X, S_M, S_F, S_FW, S_PERM, S_TRANS, S_NOISE, S_D, S_LIVE_L, S_LIVE_S, S_BLQ, S_BLB, S_BSQ, S_BSB, S_FUND, \
    S_EL, S_ES, S_PRICE, S_SCL_L, S_SCL_S = range(20)
TOTALS = ("trig_l", "trig_s", "exec_l", "exec_s", "adl_l", "adl_s", "red_l", "red_s",
          "new_l", "new_s", "new_l_usd", "new_s_usd", "adl_covered", "socialised", "adl_events",
          "drk_l", "drk_s", "drk_oi")
S_TOT = 20  # st[S_TOT + TOTALS.index(name)]
T_TRIG_L, T_TRIG_S, T_EXEC_L, T_EXEC_S, T_ADL_L, T_ADL_S, T_RED_L, T_RED_S, T_NEW_L, T_NEW_S, T_NEW_L_USD, \
    T_NEW_S_USD, T_ADL_COVERED, T_SOCIALISED, T_ADL_EVENTS, T_DRK_L, T_DRK_S, T_DRK_OI = range(S_TOT, S_TOT + len(TOTALS))
N_ST = S_TOT + len(TOTALS)
# ist: integer state
I_KLONG, I_KSHORT = 0, 1


@numba.njit(cache=True)
def bisect_left(a, x):
    """CPython's bisect.bisect_left: first i with a[i] >= x (all a[:i] < x)."""
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def bisect_right(a, x):
    """CPython's bisect.bisect_right: first i with a[i] > x (all a[:i] <= x)."""
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


# Python-float semantics inside the kernel, so a parameter set that made the Python loop raise
# (the calibration scores such sets as failed, calib._objective) still raises, and NaN compares
# as in CPython's min/max.

@numba.njit(cache=True)
def py_exp(v):
    """math.exp: OverflowError when a finite argument overflows (exp(inf) = inf, no error)."""
    r = math.exp(v)
    if r == math.inf and v != math.inf:
        raise OverflowError("math range error")
    return r


@numba.njit(cache=True)
def py_pow(a, b):
    """float ** float for a >= 0: OverflowError when finite operands overflow."""
    r = a ** b
    if math.isinf(r) and not math.isinf(a) and not math.isinf(b):
        raise OverflowError("Numerical result out of range")
    return r


@numba.njit(cache=True)
def py_int(v):
    """int(float): truncation; ValueError on NaN, OverflowError on infinity."""
    if math.isnan(v):
        raise ValueError("cannot convert float NaN to integer")
    if math.isinf(v):
        raise OverflowError("cannot convert float infinity to integer")
    return int(v)


@numba.njit(cache=True)
def py_min(a, b):
    """CPython's min(a, b): b only if b < a."""
    return b if b < a else a  # noqa: FURB136 (explicit: the NaN cases are the point)


@numba.njit(cache=True)
def py_max(a, b):
    """CPython's max(a, b): b only if b > a."""
    return b if b > a else a  # noqa: FURB136 (explicit: the NaN cases are the point)


@numba.njit(cache=True)
def ou_path(z, phi, sd):
    """Unit Ornstein-Uhlenbeck path acc_i = phi acc_{i-1} + sd z_i from acc = 0 (the flow noise)."""
    out = np.empty(z.shape[0])
    acc = 0.0
    for i in range(z.shape[0]):
        acc = phi * acc + sd * z[i]
        out[i] = acc
    return out


@numba.njit(cache=True)
def step_loop(t0, resume, cfg, st, ist, levels, qL, bL, eL, qS, bS, eS, noise, shock, directed, halted,
              reb_w, reb_off, reb_rb, reb_n, xs, ms, trig_l, trig_s, trig_l_usd, trig_s_usd,
              vol_usd, prem, oi, depth, fund_path):
    """Step the model from step ``t0``; returns the step at which ADL is needed (the fund is
    exhausted with a backlog and ``cfg[C_ADL]``), after stages 1-3 of it, or ``n_steps`` when the
    run is done. ``resume``: step ``t0``'s stages 1-3 already ran (and ADL in Python), start at
    stage 4. ``directed``: the part of ``shock`` that de-risking acts on (without the noise).
    ``reb_*[0]`` is the long side's rebuild table, ``reb_*[1]`` the short side's."""
    n_steps = noise.shape[0]
    n_bins = levels.shape[0]
    x0 = cfg[C_X0]
    D0 = cfg[C_D0]
    Dmin = cfg[C_DMIN]
    a_m = cfg[C_AM]
    a_f = cfg[C_AF]
    a_w = cfg[C_AW]
    decay = cfg[C_DECAY]
    g = cfg[C_G]
    delta = cfg[C_DELTA]
    cap_k = cfg[C_CAPK]
    tau_frac = cfg[C_TAUFRAC]          # NaN: the depth-capped engine
    use_tau = not math.isnan(tau_frac)
    buy_k = cfg[C_BUYK]
    exc_k = cfg[C_EXCK]
    rebuild = cfg[C_REBUILD]
    grid_lo = cfg[C_GRIDLO]
    grid_step = cfg[C_GRIDSTEP]
    kappa = cfg[C_KAPPA]
    tau_d = cfg[C_TAUD]
    dt = cfg[C_DT]
    adl = cfg[C_ADL] != 0.0
    drk = cfg[C_DRK]                   # share of the exogenous flow that closes leveraged (bin) positions
    drk_oi = cfg[C_DRKOI]              # share of it that closes open interest of any kind
    mom_short = cfg[C_MOMSHORT]        # share of the momentum sellers' flow that opens new leveraged shorts

    x = st[S_X]
    m = st[S_M]
    f = st[S_F]
    fw = st[S_FW]
    perm = st[S_PERM]
    trans = st[S_TRANS]
    noise_cum = st[S_NOISE]
    D = st[S_D]
    live_l = st[S_LIVE_L]
    live_s = st[S_LIVE_S]
    bl_q = st[S_BLQ]
    bl_b = st[S_BLB]
    bs_q = st[S_BSQ]
    bs_b = st[S_BSB]
    fund = st[S_FUND]
    el = st[S_EL]
    es = st[S_ES]
    price = st[S_PRICE]
    sc_l = st[S_SCL_L]
    sc_s = st[S_SCL_S]
    k_long = ist[I_KLONG]
    k_short = ist[I_KSHORT]

    for t in range(t0, n_steps):
        if not (resume and t == t0):
            mark_price = py_exp(m)
            # 1. triggers on the mark
            kl = bisect_left(levels, m)
            if kl < k_long:
                dq, db = _take(qL, bL, eL, kl, k_long, sc_l)
                k_long = kl
                if dq > 0:
                    bl_q += dq
                    bl_b += db
                    live_l -= dq
                    st[T_TRIG_L] += dq
                    trig_l[t] = dq
                    trig_l_usd[t] = dq * mark_price
            ks = bisect_right(levels, m)
            if ks > k_short:
                dq, db = _take(qS, bS, eS, k_short, ks, sc_s)
                k_short = ks
                if dq > 0:
                    bs_q += dq
                    bs_b += db
                    live_s -= dq
                    st[T_TRIG_S] += dq
                    trig_s[t] = dq
                    trig_s_usd[t] = dq * mark_price
            # 2. the liquidation engine, limited throughput (or backlog-proportional)
            price = py_exp(x)
            el = 0.0
            es = 0.0
            if not halted[t]:
                cap = cap_k * D
                if bl_q > 0:
                    el = bl_q * price * tau_frac if use_tau else py_min(bl_q * price, cap)
                    q = el / price
                    avg_b = bl_b / bl_q
                    fund += q * (price - avg_b)
                    bl_b -= q * avg_b
                    bl_q -= q
                    st[T_EXEC_L] += q
                if bs_q > 0:
                    es = bs_q * price * tau_frac if use_tau else py_min(bs_q * price, cap)
                    q = es / price
                    avg_b = bs_b / bs_q
                    fund += q * (avg_b - price)
                    bs_b -= q * avg_b
                    bs_q -= q
                    st[T_EXEC_S] += q
            # 3. insurance fund exhausted: ADL (in Python) closes the backlog against the other side
            if fund < 0 and adl:
                if bl_q > 0 or bs_q > 0:
                    sc_l, sc_s = _fold(qL, bL, eL, qS, bS, eS, sc_l, sc_s)
                    _store(st, ist, x, m, f, fw, perm, trans, noise_cum, D, live_l, live_s, bl_q, bl_b, bs_q, bs_b,
                           fund, el, es, price, sc_l, sc_s, k_long, k_short)
                    return t
                fund = 0.0
        # 4. flow and impact
        not_halted = not halted[t]
        value = buy_k * D * (f - x)            # > 0: value buyers below fair
        momentum = exc_k * D * (fw - x) if (fw > x and not_halted) else 0.0  # stop/momentum sellers
        flow = el - es + shock[t] + momentum - value      # > 0: net selling
        # 4a. de-risking: a share of the directed exogenous flow (shocks, burst, momentum sellers; not
        # the two-sided noise) closes positions: sells close longs, buys shorts
        exo = directed[t] + momentum
        if drk > 0.0 and exo != 0.0:
            st[T_DRK_OI] += drk_oi * abs(exo) / price
            if exo > 0.0 and live_l > 0.0:
                q, live_l, sc_l = _close(drk * exo / price, live_l, sc_l)
                st[T_DRK_L] += q
            elif exo < 0.0 and live_s > 0.0:
                q, live_s, sc_s = _close(-drk * exo / price, live_s, sc_s)
                st[T_DRK_S] += q
            if sc_l < 1e-6 or sc_s < 1e-6:   # (nearly) a whole side closed: fold now, so a rebuild never divides by ~0
                sc_l, sc_s = _fold(qL, bL, eL, qS, bS, eS, sc_l, sc_s)
        # 4b. leverage rebuilding: part of the value flow opens new leveraged positions here, and
        # part of the momentum sellers' flow opens new leveraged shorts (the next squeeze's band)
        if rebuild > 0.0 and value != 0.0:
            b0 = (x - grid_lo) / grid_step
            if value > 0:
                live_l, k_long = _open(qL, bL, eL, sc_l, rebuild * value, price, b0, reb_w[0], reb_off[0], reb_rb[0],
                                       reb_n[0], levels, m, k_long, True, live_l, st, T_NEW_L, T_NEW_L_USD)
            else:
                live_s, k_short = _open(qS, bS, eS, sc_s, -rebuild * value, price, b0, reb_w[1], reb_off[1], reb_rb[1],
                                        reb_n[1], levels, m, k_short, False, live_s, st, T_NEW_S, T_NEW_S_USD)
        if mom_short > 0.0 and momentum > 0.0:
            live_s, k_short = _open(qS, bS, eS, sc_s, mom_short * momentum, price, (x - grid_lo) / grid_step, reb_w[1],
                                    reb_off[1], reb_rb[1], reb_n[1], levels, m, k_short, False, live_s, st, T_NEW_S, T_NEW_S_USD)
        phi = 0.01 * py_pow(abs(flow) / D, delta)
        if flow < 0:
            phi = -phi
        perm += g * phi
        trans = trans * decay + (1.0 - g) * phi
        noise_cum += noise[t]
        x_new = x0 - perm - trans + noise_cum
        # 5. depth: quotes pulled in fast moves, refilled over depth_tau_s
        D = py_max(Dmin, D * py_exp(-kappa * abs(x_new - x)) + (D0 - D) * dt / tau_d)
        x = x_new
        m += a_m * (x - m)
        f += a_f * (x - f)
        fw += a_w * (x - fw)
        xs[t + 1] = x
        ms[t + 1] = m
        vol_usd[t] = el + es + abs(shock[t]) + abs(value) + momentum
        prem[t] = py_exp(x - m) - 1.0
        oi[t] = live_l + bl_q + live_s + bs_q
        depth[t] = D
        fund_path[t] = fund

    sc_l, sc_s = _fold(qL, bL, eL, qS, bS, eS, sc_l, sc_s)
    _store(st, ist, x, m, f, fw, perm, trans, noise_cum, D, live_l, live_s, bl_q, bl_b, bs_q, bs_b,
           fund, el, es, price, sc_l, sc_s, k_long, k_short)
    return n_steps


@numba.njit(cache=True)
def _open(q, b, e, scale, usd, price, b0, w, off, rb, n, levels, m, k, is_long, live, st, t_qty, t_usd):
    """Open ``usd`` of new positions of one side at ``price`` over the leverage mix (weights ``w``,
    bin offsets ``off`` from the price's bin ``b0``, bankruptcy ratios ``rb``; ``n`` leverages).
    A leverage whose liquidation level is not on the safe side of the mark ``m`` is left out (the
    venue rejects an order that would be liquidated at once); a bin inside the range already
    triggered (longs at or above the trigger index ``k``, shorts below it; those bins are empty)
    moves ``k`` so that the new bin is live. Returns the side's live quantity and ``k``; the
    opened quantity and USD go to the totals ``st[t_qty]``, ``st[t_usd]``."""
    n_bins = q.shape[0]
    k_mark = bisect_left(levels, m) if is_long else bisect_right(levels, m)
    for j in range(n):
        bi = py_int(b0 + off[j] + 0.5)
        if 0 <= bi < n_bins and ((bi < k_mark) if is_long else (bi >= k_mark)):
            if is_long and bi >= k:
                k = bi + 1
            elif not is_long and bi < k:
                k = bi
            qq = usd * w[j] / price
            q[bi] += qq / scale
            b[bi] += qq * price * rb[j] / scale
            e[bi] += qq * price / scale
            live += qq
            st[t_qty] += qq
            st[t_usd] += usd * w[j]
    return live, k


@numba.njit(cache=True)
def _take(q, b, e, lo, hi, scale):
    """Triggered bins lo..hi-1: their qty and qty x bankruptcy sums (left to right, as Python's
    ``sum``) times the side's de-risking ``scale``, and the bins emptied."""
    dq = 0.0
    db = 0.0
    for i in range(lo, hi):
        dq += q[i]
        db += b[i]
        q[i] = 0.0
        b[i] = 0.0
        e[i] = 0.0
    return dq * scale, db * scale


@numba.njit(cache=True)
def _close(want, live, scale):
    """Close ``want`` (at most ``live``) pro rata over a side's bins: (closed, live, scale) after."""
    q = py_min(want, live)
    return q, live - q, scale * (1.0 - q / live)


@numba.njit(cache=True)
def _fold(qL, bL, eL, qS, bS, eS, sc_l, sc_s):
    """Fold the de-risking scales into the bins (a no-op when a scale is exactly 1); returns (1, 1)."""
    if sc_l != 1.0:
        qL *= sc_l
        bL *= sc_l
        eL *= sc_l
    if sc_s != 1.0:
        qS *= sc_s
        bS *= sc_s
        eS *= sc_s
    return 1.0, 1.0


@numba.njit(cache=True)
def _store(st, ist, x, m, f, fw, perm, trans, noise_cum, D, live_l, live_s, bl_q, bl_b, bs_q, bs_b,
           fund, el, es, price, sc_l, sc_s, k_long, k_short):
    """The loop's state into ``st``/``ist`` (where the kernel stops for ADL, and at the end)."""
    st[S_X] = x
    st[S_M] = m
    st[S_F] = f
    st[S_FW] = fw
    st[S_PERM] = perm
    st[S_TRANS] = trans
    st[S_NOISE] = noise_cum
    st[S_D] = D
    st[S_LIVE_L] = live_l
    st[S_LIVE_S] = live_s
    st[S_BLQ] = bl_q
    st[S_BLB] = bl_b
    st[S_BSQ] = bs_q
    st[S_BSB] = bs_b
    st[S_FUND] = fund
    st[S_EL] = el
    st[S_ES] = es
    st[S_PRICE] = price
    st[S_SCL_L] = sc_l
    st[S_SCL_S] = sc_s
    ist[I_KLONG] = k_long
    ist[I_KSHORT] = k_short


@numba.njit(cache=True)
def seq_sum(a):
    """Left-to-right sum (Python's ``sum`` over the bins, not numpy's pairwise sum)."""
    acc = 0.0
    for i in range(a.shape[0]):
        acc += a[i]
    return acc
