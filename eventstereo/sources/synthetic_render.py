"""Kernels of the synthetic source: ray-cast log intensity and depth, emit events, sort them by time.

Rendering casts one ray per pixel centre against every planar face whose screen box covers the pixel.
All per-face quantities that do not depend on the pixel are computed once per render in numpy
(``prepare_faces``), so the per-pixel work is a handful of multiply-adds per face and one bilinear
texture lookup. Events follow the ESIM idea: per pixel a reference log intensity; log intensity is
interpolated linearly between two renders and every threshold crossing becomes an event with the
interpolated time. All kernels are single-threaded numba (the generator must keep real time on one
core, leaving the others to the network).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from eventstereo.sources.synthetic_scene import (
    F_AMIN,
    F_BMAX,
    F_BRIGHT,
    F_INV_TEXEL,
    F_N,
    F_OFF_A,
    F_OFF_B,
    F_ORIGIN,
    F_TEX,
    F_TWO_SIDED,
    F_U,
    F_V,
)

# Columns of the per-render coefficient table.
C_K, C_N, C_U, C_A0, C_V, C_B0 = 0, 1, 4, 7, 8, 11
C_AMIN, C_AMAX, C_BMIN, C_BMAX, C_INV_TEXEL, C_OFF_A, C_OFF_B, C_BRIGHT = 12, 13, 14, 15, 16, 17, 18, 19
COEF_COLUMNS = 20
NEAR_M = 1e-3
# Fast-math limited to reciprocals and signed zeros: depth uses inf for "no surface" (so no ninf/nnan), and
# no FMA contraction, so results depend less on the CPU the kernels are compiled for.
_FAST = {"nsz", "arcp"}


def prepare_faces(
    table: np.ndarray,
    rotation: np.ndarray,
    center: np.ndarray,
    intrinsics: tuple[float, float, float, float],
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-render face coefficients in the camera frame and each face's screen box.

    For a pixel ray d = (xn, yn, 1) in camera coordinates, a face's plane is hit at depth
    t = k / (n_c . d) with k = n . (p0 - o); the surface coordinates there are a = a0 + t (u_c . d) and
    b = b0 + t (v_c . d). Faces seen from behind (one-sided) are dropped. Returns (coef (F, 20) float64,
    ibox (F, 5) int64 = x0, x1, y0, y1, texture).
    """
    fx, fy, cx, cy = intrinsics
    w, h = size
    p0 = table[:, F_ORIGIN:F_ORIGIN + 3]
    n = table[:, F_N:F_N + 3]
    u = table[:, F_U:F_U + 3]
    v = table[:, F_V:F_V + 3]
    rel = p0 - center
    k = (rel * n).sum(1)
    visible = (table[:, F_TWO_SIDED] > 0) | (k < -1e-12)
    # Near faces first (by the depth of their origin; unbounded planes last): the z-buffer then rejects
    # most pixels of the faces behind them before any division.
    key = np.where(np.isfinite(table[:, F_AMIN:F_BMAX + 1]).all(1), (rel @ rotation)[:, 2], np.inf)
    idx = np.flatnonzero(visible)
    idx = idx[np.argsort(key[idx], kind="stable")]
    coef = np.empty((len(idx), 20))
    coef[:, C_K] = k[idx]
    coef[:, C_N:C_N + 3] = n[idx] @ rotation
    coef[:, C_U:C_U + 3] = u[idx] @ rotation
    coef[:, C_A0] = -(rel[idx] * u[idx]).sum(1)
    coef[:, C_V:C_V + 3] = v[idx] @ rotation
    coef[:, C_B0] = -(rel[idx] * v[idx]).sum(1)
    coef[:, C_AMIN:C_BMAX + 1] = table[idx, F_AMIN:F_BMAX + 1]
    coef[:, C_INV_TEXEL] = table[idx, F_INV_TEXEL]
    coef[:, C_OFF_A] = table[idx, F_OFF_A]
    coef[:, C_OFF_B] = table[idx, F_OFF_B]
    coef[:, C_BRIGHT] = table[idx, F_BRIGHT]

    ibox = np.empty((len(idx), 5), np.int64)
    ibox[:, 0], ibox[:, 1], ibox[:, 2], ibox[:, 3] = 0, w - 1, 0, h - 1
    ibox[:, 4] = table[idx, F_TEX].astype(np.int64)
    ext = table[idx, F_AMIN:F_BMAX + 1]
    finite = np.isfinite(ext).all(1)
    if finite.any():
        fi = np.flatnonzero(finite)
        corners = np.stack([
            p0[idx[fi]] + ext[fi, ia, None] * u[idx[fi]] + ext[fi, ib, None] * v[idx[fi]]
            for ia, ib in ((0, 2), (0, 3), (1, 2), (1, 3))
        ], axis=1)  # (Ff, 4, 3)
        cam = (corners - center) @ rotation  # camera coordinates
        z = cam[..., 2]
        in_front = (z > NEAR_M).all(1)
        zs = np.where(z > NEAR_M, z, 1.0)
        px = fx * cam[..., 0] / zs + cx
        py = fy * cam[..., 1] / zs + cy
        x0 = np.floor(px.min(1)) - 1
        x1 = np.ceil(px.max(1)) + 1
        y0 = np.floor(py.min(1)) - 1
        y1 = np.ceil(py.max(1)) + 1
        behind = (z <= NEAR_M).all(1)
        for j, f in enumerate(fi):
            if behind[j]:
                ibox[f, :4] = (1, 0, 1, 0)  # empty box: never hit
            elif in_front[j]:
                ibox[f, 0] = max(0, min(w, int(x0[j])))
                ibox[f, 1] = max(-1, min(w - 1, int(x1[j])))
                ibox[f, 2] = max(0, min(h, int(y0[j])))
                ibox[f, 3] = max(-1, min(h - 1, int(y1[j])))
    return coef, ibox


@numba.njit(cache=True, nogil=True, boundscheck=False, fastmath=_FAST)
def render_view(coef, ibox, textures, fx, fy, cx, cy, background, out_l, out_z):  # pragma: no cover - numba
    """Ray-cast every pixel centre; write log intensity (H, W) float32 and depth (H, W) (inf = no hit).

    ``textures`` is (N, S + 1, S + 1): each S x S tile padded by one wrapped row and column
    (``SyntheticScene.padded_textures``), so the four bilinear taps need no wrap-around.

    Per row, each face's candidate pixels are its screen box cut to the half-row where the ray meets
    its plane in front of the camera (the denominator n_c . d is linear in x, so that is one interval;
    it removes most of each room wall). The depth test is done without a division.
    """
    h, w = out_l.shape
    nf = coef.shape[0]
    mask = textures.shape[1] - 2
    rows = np.empty(nf, np.int64)
    x_lo = np.empty(nf, np.int64)
    x_hi = np.empty(nf, np.int64)
    ny = np.empty(nf)
    uy = np.empty(nf)
    vy = np.empty(nf)
    zrow = np.empty(w)
    arow = np.empty(w)
    brow = np.empty(w)
    frow = np.empty(w, np.int64)
    xs_norm = (np.arange(w) - cx) / fx
    for y in range(h):
        yn = (y - cy) / fy
        m = 0
        for f in range(nf):
            if not (ibox[f, 2] <= y <= ibox[f, 3]) or ibox[f, 0] > ibox[f, 1]:
                continue
            k = coef[f, 0]
            n0 = coef[f, 1]
            c = coef[f, 2] * yn + coef[f, 3]
            lo = ibox[f, 0]
            hi = ibox[f, 1]
            # t = k / (n0 * xn + c) > 0  <=>  sign(n0 * xn + c) == sign(k)
            if n0 == 0.0:
                if c * k <= 0.0:
                    continue
            else:
                xs = (-c / n0) * fx + cx  # pixel x where the denominator changes sign
                if (n0 > 0.0) == (k > 0.0):
                    if xs > w:
                        continue
                    if xs > lo:
                        lo = np.int64(math.floor(xs))
                else:
                    if xs < 0:
                        continue
                    if xs < hi:
                        hi = np.int64(math.ceil(xs))
            if lo > hi:
                continue
            rows[m] = f
            x_lo[m] = lo
            x_hi[m] = hi
            ny[m] = c
            uy[m] = coef[f, 5] * yn + coef[f, 6]
            vy[m] = coef[f, 9] * yn + coef[f, 10]
            m += 1
        # Z-buffer over the row: faces outer, pixels of each face's interval inner (tight loops).
        for x in range(w):
            zrow[x] = np.inf
            frow[x] = -1
        for j in range(m):
            f = rows[j]
            k = coef[f, 0]
            n0 = coef[f, 1]
            u0 = coef[f, 4]
            a0 = coef[f, 7]
            v0 = coef[f, 8]
            b0 = coef[f, 11]
            amin = coef[f, 12]
            amax = coef[f, 13]
            bmin = coef[f, 14]
            bmax = coef[f, 15]
            c = ny[j]
            cu = uy[j]
            cv = vy[j]
            for x in range(x_lo[j], x_hi[j] + 1):
                xn = xs_norm[x]
                den = n0 * xn + c
                best = zrow[x]
                # t = k / den must lie in (NEAR_M, best): compare without dividing
                if den > 0.0:
                    if k <= NEAR_M * den or k >= best * den:
                        continue
                elif den < 0.0:
                    if k >= NEAR_M * den or k <= best * den:
                        continue
                else:
                    continue
                t = k / den
                a = a0 + t * (u0 * xn + cu)
                if a < amin or a > amax:
                    continue
                b = b0 + t * (v0 * xn + cv)
                if b < bmin or b > bmax:
                    continue
                zrow[x] = t
                frow[x] = f
                arow[x] = a
                brow[x] = b
        for x in range(w):
            bf = frow[x]
            if bf < 0:
                out_l[y, x] = background
                out_z[y, x] = np.inf
                continue
            ba = arow[x]
            bb = brow[x]
            best = zrow[x]
            # Bilinear lookup in the wrap-padded tile; the offset keeps coordinates positive so that
            # truncation is floor (a texture coordinate below -2^20 texels would only shift the texel).
            sa = ba * coef[bf, 16] + coef[bf, 17] + 1048576.0
            sb = bb * coef[bf, 16] + coef[bf, 18] + 1048576.0
            ia = np.int64(sa)
            ib = np.int64(sb)
            wa = np.float32(sa - ia)
            wb = np.float32(sb - ib)
            i0 = ia & mask
            j0 = ib & mask
            tex = ibox[bf, 4]
            t00 = textures[tex, j0, i0]
            t01 = textures[tex, j0, i0 + 1]
            t10 = textures[tex, j0 + 1, i0]
            t11 = textures[tex, j0 + 1, i0 + 1]
            top = t00 + (t01 - t00) * wa
            bot = t10 + (t11 - t10) * wa
            out_l[y, x] = top + (bot - top) * wb + coef[bf, 19]
            out_z[y, x] = best


@numba.njit(cache=True, nogil=True, boundscheck=False)
def emit_events(l0, l1, ref, last_t, c_on, c_off, ta, tb, t_max, refractory,
                ex, ey, et, ep, n, start, width):  # pragma: no cover - numba
    """Threshold crossings of every pixel while log intensity goes linearly from l0 (time ta) to l1 (tb).

    Arrays are flat over pixels. A crossing of ref + c_on (ref - c_off) is an ON (OFF) event at the
    interpolated time, floored to whole microseconds and capped at ``t_max``; ref moves by the threshold
    at every crossing. Crossings within ``refractory`` us of the pixel's previous event are lost (the
    pixel is blind), but ref still follows, as a real pixel that resets after its dead time would.
    Writes into ex, ey, et, ep from position n; stops before a pixel whose events might not fit and
    returns (n, next pixel) so the caller can grow the buffers and resume; (n, npix) when done.
    """
    npix = l1.shape[0]
    cap = ex.shape[0]
    span = tb - ta
    for i in range(start, npix):
        r = ref[i]
        v1 = l1[i]
        d = v1 - r
        con = c_on[i]
        coff = c_off[i]
        if d < con and d > -coff:
            continue
        bound = int(abs(d) / min(con, coff)) + 1
        if n + bound > cap:
            return n, i
        v0 = l0[i]
        dl = v1 - v0
        y = i // width
        x = i - y * width
        last = last_t[i]
        on = d >= con  # one direction per interval: the change is linear, so all crossings share a sign
        c = con if on else coff
        sgn = 1.0 if on else -1.0
        pol = 1 if on else 0
        while (v1 - r) * sgn >= c:
            r += sgn * c
            frac = (r - v0) / dl if dl != 0.0 else 1.0
            frac = min(max(frac, 0.0), 1.0)
            te = min(np.int64(math.floor(ta + frac * span)), t_max)
            if te - last >= refractory:
                ex[n] = x
                ey[n] = y
                et[n] = te
                ep[n] = pol
                n += 1
                last = te
        ref[i] = r
        last_t[i] = last
    return n, npix


@numba.njit(cache=True, nogil=True, boundscheck=False)
def sort_by_time(ex, ey, et, ep, n, t_lo, span, ox, oy, ot, op):  # pragma: no cover - numba
    """Counting sort of the first n events by t in [t_lo, t_lo + span) into the output fields.

    Stable, O(n + span): a window's events arrive grouped by render step and pixel, and a comparison
    sort of a few hundred thousand int64 keys would cost more than rendering them.
    """
    counts = np.zeros(span + 1, np.int64)
    for i in range(n):
        counts[et[i] - t_lo + 1] += 1
    for k in range(span):
        counts[k + 1] += counts[k]
    for i in range(n):
        k = et[i] - t_lo
        pos = counts[k]
        counts[k] = pos + 1
        ox[pos] = ex[i]
        oy[pos] = ey[i]
        ot[pos] = et[i]
        op[pos] = ep[i]


@numba.njit(cache=True, nogil=True, boundscheck=False)
def emit_frame_events(l1, ref, c_on, c_off, tb, t_max, ex, ey, et, ep, n, start, width):  # pragma: no cover
    """Frame-differencing events, as simple simulators make them: at each rendered frame (time ``tb``)
    a pixel emits floor((L - ref) / c) events of one sign, all stamped with the frame time, and ref
    moves by that many thresholds. No interpolation between frames and no refractory period: the
    timing is quantised to the frame rate. Same buffer protocol as ``emit_events``."""
    npix = l1.shape[0]
    cap = ex.shape[0]
    te = min(np.int64(math.floor(tb)), t_max)
    for i in range(start, npix):
        r = ref[i]
        d = l1[i] - r
        con = c_on[i]
        coff = c_off[i]
        if d < con and d > -coff:
            continue
        on = d >= con
        c = con if on else coff
        k = int(abs(d) / c)
        if n + k > cap:
            return n, i
        y = i // width
        x = i - y * width
        pol = 1 if on else 0
        for _ in range(k):
            ex[n] = x
            ey[n] = y
            et[n] = te
            ep[n] = pol
            n += 1
        ref[i] = r + (k * c if on else -k * c)
    return n, npix
