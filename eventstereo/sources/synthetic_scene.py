"""Scene and camera path of the synthetic stereo source: textured planar faces and a smooth flight.

Everything here is geometry in a world frame with the OpenCV camera convention (x right, y down,
z forward). A scene is a flat list of planar faces (rectangles, box sides, infinite room planes), each
textured in its own surface coordinates, so a surface point has the same log intensity from any
viewpoint: that is what makes the left and right event streams consistent, hence stereo learnable.
A trajectory maps time to a camera pose as a pure function, so any window can be regenerated.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Columns of the static face table (SyntheticScene.face_table).
F_ORIGIN, F_U, F_V, F_N = 0, 3, 6, 9
F_AMIN, F_AMAX, F_BMIN, F_BMAX = 12, 13, 14, 15
F_TEX, F_INV_TEXEL, F_OFF_A, F_OFF_B, F_BRIGHT, F_TWO_SIDED = 16, 17, 18, 19, 20, 21
FACE_COLUMNS = 22

# The random flight stays inside this box around the origin (m) and turns at most this much (deg);
# the random scene keeps its objects out of that box so the camera never enters one.
FLIGHT_AMPLITUDE_M = (0.4, 0.2, 0.4)
FLIGHT_ROTATION_DEG = (4.0, 5.0, 3.0)  # pitch (about x), yaw (about y), roll (about z)


@dataclass
class Face:
    """A planar, textured face: points ``origin + a*u + b*v`` with a, b in the extent (metres).

    ``u`` and ``v`` are orthonormal, the normal is ``u x v``. One-sided faces are seen only from the
    side the normal points to (box sides, room walls); two-sided ones from both (free panels). Infinite
    extents make an unbounded plane. The texture is sampled at ``(a / texel_m + offset[0],
    b / texel_m + offset[1])`` texels and ``brightness`` is added (log units: albedo and shading).
    """

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    extent: tuple[float, float, float, float]
    texture: int
    texel_m: float
    offset: tuple[float, float] = (0.0, 0.0)
    brightness: float = 0.0
    two_sided: bool = False

    def row(self) -> np.ndarray:
        u = np.asarray(self.u, np.float64)
        v = np.asarray(self.v, np.float64)
        if abs(np.linalg.norm(u) - 1) > 1e-6 or abs(np.linalg.norm(v) - 1) > 1e-6 or abs(u @ v) > 1e-6:
            raise ValueError("face axes u, v must be orthonormal")
        if self.texel_m <= 0:
            raise ValueError(f"texel size must be positive, not {self.texel_m}")
        r = np.empty(FACE_COLUMNS)
        r[F_ORIGIN:F_ORIGIN + 3] = self.origin
        r[F_U:F_U + 3] = u
        r[F_V:F_V + 3] = v
        r[F_N:F_N + 3] = np.cross(u, v)
        r[F_AMIN:F_BMAX + 1] = self.extent
        r[F_TEX] = self.texture
        r[F_INV_TEXEL] = 1.0 / self.texel_m
        r[F_OFF_A], r[F_OFF_B] = self.offset
        r[F_BRIGHT] = self.brightness
        r[F_TWO_SIDED] = 1.0 if self.two_sided else 0.0
        return r


def rotation_xyz(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Rotation R = Rz(roll) Ry(yaw) Rx(pitch) (radians), mapping body axes to world axes."""
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    cr, sr = math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


def plane_face(
    origin, normal, texture: int, texel_m: float, *, brightness: float = 0.0,
    offset: tuple[float, float] = (0.0, 0.0),
) -> Face:
    """An unbounded one-sided plane through ``origin``, seen from the side ``normal`` points to.

    Texture axes: u = normal x world y (horizontal; world x when the normal is vertical) and
    v = normal x u, so for a wall facing the camera (normal -z) u = +x and v = -y.
    """
    n = np.asarray(normal, np.float64)
    n = n / np.linalg.norm(n)
    u = np.cross(n, (0.0, 1.0, 0.0))
    if np.linalg.norm(u) < 1e-6:
        u = np.array([1.0, 0.0, 0.0])
    u = u / np.linalg.norm(u)
    v = np.cross(n, u)
    inf = math.inf
    return Face(np.asarray(origin, np.float64), u, v, (-inf, inf, -inf, inf), texture, texel_m, offset,
                brightness, False)


def rect_faces(
    center, rotation: np.ndarray, size: tuple[float, float], texture: int, texel_m: float,
    *, brightness: float = 0.0, offset: tuple[float, float] = (0.0, 0.0), two_sided: bool = True,
) -> list[Face]:
    """A rectangle of ``size`` (w, h) m centred at ``center``; its axes are the rotation's x and y
    columns, so the identity gives a fronto-parallel panel facing the camera (normal +z seen from -z
    is fine because panels are two-sided by default)."""
    w, h = size
    return [Face(np.asarray(center, np.float64), rotation[:, 0], rotation[:, 1],
                 (-w / 2, w / 2, -h / 2, h / 2), texture, texel_m, offset, brightness, two_sided)]


def box_faces(
    center, rotation: np.ndarray, size: tuple[float, float, float], texture: int, texel_m: float,
    *, brightness: float = 0.0, light=(0.3, -0.8, -0.5), shading: float = 0.35, rng=None,
) -> list[Face]:
    """Six outward-facing one-sided faces of a box (size along the rotation's x, y, z columns).

    Faces share one texture at different offsets; Lambertian shading from a fixed world light gives
    each side its own brightness, like a real box under room light (view-independent, so both eyes
    agree).
    """
    c = np.asarray(center, np.float64)
    half = np.asarray(size, np.float64) / 2
    ax = [rotation[:, i] for i in range(3)]
    light = np.asarray(light, np.float64)
    light = light / np.linalg.norm(light)
    rng = rng or np.random.default_rng(0)
    faces = []
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3  # (u, v) = (ax_j, ax_k) gives normal +ax_i
        for sign in (1.0, -1.0):
            u = ax[j] * sign
            v = ax[k]
            n = np.cross(u, v)
            shade = shading * (float(n @ -light))
            faces.append(Face(c + sign * half[i] * ax[i], u, v, (-half[j], half[j], -half[k], half[k]),
                              texture, texel_m, tuple(rng.uniform(0, 256, 2)), brightness + shade, False))
    return faces


def room_faces(
    x_range: tuple[float, float], y_range: tuple[float, float], z_range: tuple[float, float],
    textures: list[int], texels_m: list[float], brightness: list[float],
) -> list[Face]:
    """The six inward-facing infinite planes of an axis-aligned room (camera inside): left, right,
    ceiling, floor, front (behind the camera), back. For a convex room the nearest plane hit is the
    wall actually seen, so unbounded planes suffice and cost one test each."""
    (x0, x1), (y0, y1), (z0, z1) = x_range, y_range, z_range
    ex, ey, ez = np.eye(3)
    inf = math.inf
    # (origin, u, v) with u x v pointing into the room.
    planes = [
        ((x0, 0, 0), ey, ez),      # left wall, normal +x
        ((x1, 0, 0), ez, ey),      # right wall, normal -x
        ((0, y0, 0), ez, ex),      # ceiling (y down), normal +y
        ((0, y1, 0), ex, ez),      # floor, normal -y
        ((0, 0, z0), ex, ey),      # front, normal +z
        ((0, 0, z1), ey, ex),      # back wall, normal -z
    ]
    return [Face(np.asarray(o, np.float64), u, v, (-inf, inf, -inf, inf), textures[i], texels_m[i],
                 (0.0, 0.0), brightness[i], False) for i, (o, u, v) in enumerate(planes)]


def _lowpass(size: int, texel_m: float, min_wavelength_m: float) -> tuple[np.ndarray, np.ndarray]:
    """The Fourier low-pass every texture goes through (so no detail is finer than the renderer can
    sample) and the radial frequency grid (rfft layout), both for a (size, size) tile."""
    fy = np.fft.fftfreq(size, d=texel_m)[:, None]
    fx = np.fft.rfftfreq(size, d=texel_m)[None, :]
    f = np.hypot(fx, fy)
    return np.exp(-((f / (1.0 / min_wavelength_m)) ** 4)), f


def _pink(rng: np.random.Generator, size: int, f: np.ndarray, lowpass: np.ndarray,
          exponent: float = 1.0) -> np.ndarray:
    """Tileable noise with amplitude ~ 1 / f**exponent (1 = natural-image statistics), unit std."""
    f_safe = np.where(f > 0, f, np.inf)
    img = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((size, size))) / f_safe ** exponent * lowpass,
                        s=(size, size))
    return img / (img.std() + 1e-12)


def _wrapped_patch(size: int, cx: float, cy: float, r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                           np.ndarray]:
    """Row/column indices (wrapped) of the square around (cx, cy) with half-size r, and the offsets
    of those pixels from the centre: shapes drawn there tile seamlessly."""
    half = int(math.ceil(r)) + 1
    xs = np.arange(int(cx) - half, int(cx) + half + 1)
    ys = np.arange(int(cy) - half, int(cy) + half + 1)
    return ys % size, xs % size, (xs - cx)[None, :], (ys - cy)[:, None]


def _texture_mixed(rng, size, f, lowpass, min_px):
    """Pink noise plus piecewise-constant shapes (rectangles, discs, sometimes a checkerboard or
    stripes): the original texture of the source, kept draw for draw so old seeds do not change."""
    f_safe = np.where(f > 0, f, np.inf)
    noise = np.fft.rfft2(rng.standard_normal((size, size)))
    pink_img = np.fft.irfft2(noise / f_safe * lowpass, s=(size, size))
    pink_img /= pink_img.std() + 1e-12

    shapes = np.zeros((size, size))
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(int(rng.integers(8, 30))):
        cx, cy = rng.uniform(0, size, 2)
        r = rng.uniform(min_px, size / 5)
        dx = (xx - cx + size / 2) % size - size / 2
        dy = (yy - cy + size / 2) % size - size / 2
        if rng.random() < 0.5:
            aspect = rng.uniform(0.3, 3.0)
            mask = (np.abs(dx) < r * aspect ** 0.5) & (np.abs(dy) < r / aspect ** 0.5)
        else:
            mask = dx * dx + dy * dy < r * r
        shapes[mask] += rng.normal(0.0, 1.0)
    style = rng.random()
    if style < 0.25:
        n = int(rng.choice([4, 8, 16]))
        shapes += np.where(((xx * n // size) + (yy * n // size)) % 2 == 0, 1.0, -1.0) * rng.uniform(0.5, 1.0)
    elif style < 0.45:
        n = int(rng.choice([4, 8, 16, 32]))
        axis = xx if rng.random() < 0.5 else yy
        shapes += np.sin(2 * np.pi * n * axis / size) * rng.uniform(0.5, 1.0)
    shapes = np.fft.irfft2(np.fft.rfft2(shapes) * lowpass, s=(size, size))
    shapes /= shapes.std() + 1e-12
    mix = rng.uniform(0.3, 0.7)
    return mix * pink_img + (1 - mix) * shapes


def _texture_pink(rng, size, f, lowpass, min_px):
    """1/f^a noise with a random exponent (0.7 rough .. 1.6 smooth), like natural surfaces."""
    return _pink(rng, size, f, lowpass, rng.uniform(0.7, 1.6))


def _texture_dead_leaves(rng, size, f, lowpass, min_px):
    """Occluding discs of random grey with a power-law size distribution (density ~ r^-3): the dead
    leaves model, whose statistics (scale invariance, sharp edges) match natural images."""
    img = np.full((size, size), rng.normal())
    r_min, r_max = min_px, size / 4
    for _ in range(int(rng.integers(150, 400))):
        u = rng.random()
        r = 1.0 / math.sqrt((1 - u) / r_min ** 2 + u / r_max ** 2)  # p(r) ~ r^-3 on [r_min, r_max]
        cx, cy = rng.uniform(0, size, 2)
        rows, cols, dx, dy = _wrapped_patch(size, cx, cy, r)
        mask = dx * dx + dy * dy < r * r
        patch = img[np.ix_(rows, cols)]
        patch[mask] = rng.normal()
        img[np.ix_(rows, cols)] = patch
    return img


def _texture_stripes(rng, size, f, lowpass, min_px):
    """Oriented gratings (sine or square) and straight steps: man-made edges, blinds, tiles, wood."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size))
    k_max = max(1, int(size / (2.5 * min_px)))
    for _ in range(int(rng.integers(1, 4))):
        kx, ky = (int(v) for v in rng.integers(-k_max, k_max + 1, 2))
        if kx == 0 and ky == 0:
            kx = 1
        wave = np.sin(2 * np.pi * (kx * xx + ky * yy) + rng.uniform(0, 2 * np.pi))
        img += (np.sign(wave) if rng.random() < 0.5 else wave) * rng.uniform(0.3, 1.0)
    for _ in range(int(rng.integers(0, 4))):  # steps: one period of a low-frequency square wave
        kx, ky = (int(v) for v in rng.integers(-1, 2, 2))
        if kx == 0 and ky == 0:
            ky = 1
        step = np.sign(np.sin(2 * np.pi * (kx * xx + ky * yy) + rng.uniform(0, 2 * np.pi)))
        img += step * rng.uniform(0.3, 1.0)
    return img + 0.2 * _pink(rng, size, f, lowpass)


def _texture_text(rng, size, f, lowpass, min_px):
    """Lines of dark glyph-like marks (random 3x5 bitmaps grouped into words) on a light page: posters,
    book spines, labels."""
    img = np.zeros((size, size))
    glyph_h = max(5, int(round(rng.uniform(2.5, 6.0) * min_px)))
    glyph_w = max(3, int(round(glyph_h * rng.uniform(0.5, 0.8))))
    line = int(glyph_h * rng.uniform(1.3, 2.0))
    ink = -rng.uniform(1.0, 2.0)
    for top in range(int(rng.integers(0, line)), size - glyph_h, line):
        x = int(rng.integers(0, 2 * glyph_w))
        while x + glyph_w < size:
            for _ in range(int(rng.integers(2, 9))):  # a word
                if x + glyph_w >= size:
                    break
                bits = rng.random((5, 3)) < 0.5
                glyph = np.kron(bits, np.ones((glyph_h // 5 + 1, glyph_w // 3 + 1)))[:glyph_h, :glyph_w]
                img[top:top + glyph_h, x:x + glyph_w] += ink * glyph
                x += glyph_w + max(1, glyph_w // 4)
            x += 2 * glyph_w
    return img + 0.1 * _pink(rng, size, f, lowpass)


def _texture_gradient(rng, size, f, lowpass, min_px):
    """Smooth shading: a few of the lowest tileable Fourier modes, with a trace of fine noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size))
    for _ in range(int(rng.integers(1, 4))):
        kx, ky = (int(v) for v in rng.integers(-2, 3, 2))
        img += np.cos(2 * np.pi * (kx * xx + ky * yy) + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 1.0)
    return img + 0.05 * _pink(rng, size, f, lowpass)


def _texture_flat(rng, size, f, lowpass, min_px):
    """A nearly flat surface (painted wall, sky): faint 1/f noise only; scaled to a small fraction of
    the surface contrast by TEXTURE_CONTRAST below."""
    return _pink(rng, size, f, lowpass, rng.uniform(1.0, 2.0))


def shipped_photographs() -> list[np.ndarray]:
    """Greyscale photographs that installed packages ship (scikit-learn's sample images, matplotlib's
    sample data), as float32 log intensity; found on disk, never downloaded. For held-out checks only:
    no training configuration may use the "photo" family (tools/README.md)."""
    global _PHOTOS
    if _PHOTOS is None:
        import importlib.util

        import cv2

        paths = []
        for package, rel in (("sklearn", "datasets/images"), ("matplotlib", "mpl-data/sample_data")):
            spec = importlib.util.find_spec(package)
            for root in (spec.submodule_search_locations or []) if spec else []:
                paths += sorted(Path(root, rel).glob("*.jpg"))
        images = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in paths]
        _PHOTOS = [np.log(img.astype(np.float32) / 255.0 + 0.02) for img in images if img is not None]
    if not _PHOTOS:
        raise ValueError("texture family 'photo' needs photographs shipped by scikit-learn or matplotlib; "
                         "none were found")
    return _PHOTOS


_PHOTOS: list[np.ndarray] | None = None


def _texture_photo(rng, size, f, lowpass, min_px):
    """A random crop of a package-shipped photograph, mirrored into a seamless tile (held-out only)."""
    import cv2

    photos = shipped_photographs()
    img = photos[int(rng.integers(len(photos)))]
    h, w = img.shape
    side = int(rng.uniform(0.25, 0.7) * min(h, w))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    half = cv2.resize(img[y0:y0 + side, x0:x0 + side], (size // 2, size // 2), interpolation=cv2.INTER_AREA)
    top = np.concatenate([half, half[:, ::-1]], axis=1)
    return np.concatenate([top, top[::-1]], axis=0).astype(np.float64)


# name -> (generator, multiplier of the requested contrast); "mixed" is the source's original texture,
# "photo" is for held-out checks only.
TEXTURE_FAMILIES = {
    "mixed": (_texture_mixed, 1.0),
    "pink": (_texture_pink, 1.0),
    "dead_leaves": (_texture_dead_leaves, 1.0),
    "stripes": (_texture_stripes, 1.0),
    "text": (_texture_text, 1.0),
    "gradient": (_texture_gradient, 1.0),
    "flat": (_texture_flat, 0.08),
    "photo": (_texture_photo, 1.0),
}


def make_texture(
    rng: np.random.Generator, size: int, texel_m: float, min_wavelength_m: float, contrast: float,
    family: str = "mixed",
) -> np.ndarray:
    """A tileable (size, size) float32 log-intensity texture with zero mean and std ``contrast``
    (times the family's multiplier: "flat" is nearly flat).

    ``family`` names an entry of TEXTURE_FAMILIES: "mixed" (pink noise plus rectangles, discs,
    sometimes a checkerboard or stripes), "pink" (1/f^a noise), "dead_leaves", "stripes" (gratings
    and steps), "text" (glyph-like marks), "gradient" (smooth shading), "flat", "photo" (crops of
    photographs that packages ship: held-out checks only). All are low-passed at
    ``min_wavelength_m`` so a surface never carries detail finer than the renderer can sample at the
    depth it is seen from, and all tile seamlessly.
    """
    if family not in TEXTURE_FAMILIES:
        raise ValueError(f"unknown texture family {family!r}; choose from {sorted(TEXTURE_FAMILIES)}")
    make, gain = TEXTURE_FAMILIES[family]
    lowpass, f = _lowpass(size, texel_m, min_wavelength_m)
    min_px = max(2.0, 2.0 * min_wavelength_m / texel_m)
    img = make(rng, size, f, lowpass, min_px)
    if family != "mixed":
        img = np.fft.irfft2(np.fft.rfft2(img) * lowpass, s=(size, size))
    img -= img.mean()
    img *= gain * contrast / (img.std() + 1e-12)
    return img.astype(np.float32)


class SyntheticScene:
    """A static scene: planar faces, their textures, and the log intensity where no face is hit.

    Build one explicitly from faces (tests place a plane at a known depth this way) or draw a random
    indoor room with ``SyntheticScene.random``.
    """

    def __init__(self, faces: list[Face], textures, background: float = 0.0):
        textures = np.ascontiguousarray(np.asarray(textures, np.float32))
        if textures.ndim != 3 or textures.shape[1] != textures.shape[2]:
            raise ValueError(f"textures must be (N, S, S), got {textures.shape}")
        s = textures.shape[1]
        if s & (s - 1):
            raise ValueError(f"texture size must be a power of two, got {s}")
        if not faces:
            raise ValueError("a scene needs at least one face")
        self.faces = list(faces)
        self.face_table = np.stack([f.row() for f in self.faces])
        bad = (self.face_table[:, F_TEX] < 0) | (self.face_table[:, F_TEX] >= len(textures))
        if bad.any():
            raise ValueError(f"face {int(np.flatnonzero(bad)[0])} names a texture that does not exist")
        self.background = float(background)
        # One wrapped extra row and column, so the renderer's bilinear taps never wrap.
        self.padded_textures = np.ascontiguousarray(np.pad(textures, ((0, 0), (0, 1), (0, 1)), mode="wrap"))

    @property
    def textures(self) -> np.ndarray:
        """The (N, S, S) texture tiles (a view of the padded copy the renderer reads)."""
        return self.padded_textures[:, :-1, :-1]

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        *,
        fx: float,
        cx_norm: float,
        cy_norm: float,
        depth_min: float,
        depth_max: float,
        n_objects: int,
        texture_scale: float = 1.0,
        texture_contrast: float = 0.5,
        texture_size: int = 256,
        texture_families: tuple[str, ...] = (),
        backdrops: tuple[int, int] = (0, 0),
    ) -> SyntheticScene:
        """An indoor room with boxes and slanted panels in front of the camera's flight volume.

        ``cx_norm``/``cy_norm`` are the half fields of view as tangents (image half-width / fx), used
        to put objects where the camera looks. The back wall sits so the farthest depth seen is about
        ``depth_max``; objects stay at least ``depth_min`` in front of the flight volume. Texture detail
        is limited to ~2.5 px (times ``texture_scale``) at the farthest depth each surface is seen from.
        Each texture is of one of ``texture_families`` (drawn per texture; empty: the original "mixed"
        texture, with the original random draws). ``backdrops`` (lo, hi): that many large, nearly
        fronto-parallel panels far away (60-95 % of the back wall's depth), filling much of the view.
        """
        ax, ay, az = FLIGHT_AMPLITUDE_M
        z_back = depth_max / 1.1 - az
        x_wall = (rng.uniform(1.8, 3.0), rng.uniform(1.8, 3.0))
        y_ceiling, y_floor = -rng.uniform(1.3, 2.0), rng.uniform(1.1, 1.6)
        textures: list[np.ndarray] = []
        px = 2.5 * texture_scale / fx  # metres per "finest feature" at 1 m

        def new_texture(z_far: float, stretch: float = 1.0) -> tuple[int, float]:
            wavelength = px * z_far * stretch
            texel = wavelength / 3.0
            family = "mixed"
            if texture_families:
                family = texture_families[int(rng.integers(len(texture_families)))]
            textures.append(make_texture(rng, texture_size, texel, wavelength,
                                         texture_contrast * rng.uniform(0.7, 1.3), family))
            return len(textures) - 1, texel

        room_tex, room_texel, room_bright = [], [], []
        far = z_back + az
        for stretch in (1.0, 1.0, 2.0, 2.0, 1.0, 1.0):  # floor and ceiling are seen at grazing angles
            t, texel = new_texture(far, stretch)
            room_tex.append(t)
            room_texel.append(texel)
            room_bright.append(rng.uniform(-0.6, 0.6))
        faces = room_faces((-x_wall[0], x_wall[1]), (y_ceiling, y_floor), (-3.0, z_back),
                           room_tex, room_texel, room_bright)

        z_near = az + depth_min + 0.2
        z_far_obj = max(z_near + 0.5, z_back - 0.4)
        for _ in range(n_objects):
            z = rng.uniform(z_near, z_far_obj)
            rel = rng.uniform(0.12, 0.4)
            x = rng.uniform(-0.9, 0.9) * cx_norm * z
            y = rng.uniform(-0.8, 0.8) * cy_norm * z
            t, texel = new_texture(z + az + rel * z)
            bright = rng.uniform(-0.8, 0.8)
            if rng.random() < 0.6:
                size = np.array([rel * z * rng.uniform(0.6, 1.5) for _ in range(3)])
                size[2] = min(size[2], 2 * (z - z_near) + 0.2)  # keep the front out of the flight box
                rot = rotation_xyz(rng.uniform(-0.15, 0.15), rng.uniform(-0.8, 0.8), rng.uniform(-0.15, 0.15))
                if rng.random() < 0.4:  # standing on the floor
                    y = y_floor - size[1] / 2 - 0.01
                    rot = rotation_xyz(0.0, rng.uniform(-0.8, 0.8), 0.0)
                faces += box_faces((x, y, z), rot, tuple(size), t, texel, brightness=bright, rng=rng)
            else:
                size = (rel * z * rng.uniform(1.0, 2.0), rel * z * rng.uniform(0.8, 1.6))
                rot = rotation_xyz(rng.uniform(-0.7, 0.7), rng.uniform(-1.0, 1.0), rng.uniform(-0.3, 0.3))
                faces += rect_faces((x, y, z), rot, size, t, texel, brightness=bright,
                                    offset=tuple(rng.uniform(0, texture_size, 2)))
        if backdrops[1] > 0:
            for _ in range(int(rng.integers(backdrops[0], backdrops[1] + 1))):
                z = max(z_near, rng.uniform(0.6, 0.95) * z_back)
                size = (rng.uniform(0.6, 1.4) * 2 * cx_norm * z, rng.uniform(0.4, 1.0) * 2 * cy_norm * z)
                x = rng.uniform(-0.5, 0.5) * cx_norm * z
                y = rng.uniform(-0.5, 0.5) * cy_norm * z
                rot = rotation_xyz(rng.uniform(-0.15, 0.15), rng.uniform(-0.35, 0.35),
                                   rng.uniform(-0.05, 0.05))
                t, texel = new_texture(z + az + 0.4 * z)
                faces += rect_faces((x, y, z), rot, size, t, texel, brightness=rng.uniform(-0.8, 0.8),
                                    offset=tuple(rng.uniform(0, texture_size, 2)))
        return cls(faces, np.stack(textures))


class Trajectory(ABC):
    """Camera pose as a pure function of time (seconds): seeking is free and exact."""

    @abstractmethod
    def pose(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(R, c): rotation from camera to world axes (3, 3) and camera centre (3,) in metres."""


class LinearTrajectory(Trajectory):
    """Constant velocity, fixed orientation: the simplest motion, for tests with known answers."""

    def __init__(self, start=(0.0, 0.0, 0.0), velocity=(0.0, 0.0, 0.0), rotation: np.ndarray | None = None):
        self.start = np.asarray(start, np.float64)
        self.velocity = np.asarray(velocity, np.float64)
        self.rotation = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)

    def pose(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        return self.rotation, self.start + self.velocity * t_s


class RandomFlight(Trajectory):
    """A slow indoor flight: each of x, y, z, pitch, yaw, roll is a sum of three sinusoids.

    Bounded by construction (the amplitudes sum to FLIGHT_AMPLITUDE_M / FLIGHT_ROTATION_DEG), smooth,
    endless, never periodic in practice (incommensurate frequencies), and with hovering and faster
    stretches. Frequencies are scaled so the RMS translational speed is ``speed_mps``.
    """

    def __init__(self, rng: np.random.Generator, speed_mps: float = 0.5, n_terms: int = 3):
        amp = np.array(FLIGHT_AMPLITUDE_M + tuple(math.radians(a) for a in FLIGHT_ROTATION_DEG))
        w = rng.uniform(0.3, 1.0, (6, n_terms))
        self.amp = amp[:, None] * w / w.sum(axis=1, keepdims=True)
        self.freq = rng.uniform(0.04, 0.3, (6, n_terms))
        self.phase = rng.uniform(0, 2 * np.pi, (6, n_terms))
        rms = math.sqrt(float(((2 * np.pi * self.freq[:3] * self.amp[:3]) ** 2).sum() / 2))
        if speed_mps > 0:
            self.freq *= speed_mps / rms
        else:
            self.freq[:] = 0.0

    def state(self, t_s: float) -> np.ndarray:
        """The six coordinates (x, y, z in m, pitch, yaw, roll in rad) at time ``t_s``."""
        return (self.amp * np.sin(2 * np.pi * self.freq * t_s + self.phase)).sum(axis=1)

    def pose(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        s = self.state(t_s)
        return rotation_xyz(s[3], s[4], s[5]), s[:3].copy()


class BurstSchedule:
    """Sudden events at random times, a pure function of time: in each whole second, with probability
    ``prob``, one burst of a duration in ``duration_s`` and a random unit vector of ``dims`` values.
    ``value(t)`` is that vector times a sin^2 bump over the burst (0 outside), so what it drives rises
    and returns smoothly and stays bounded."""

    def __init__(self, key: int, prob: float, duration_s: tuple[float, float], dims: int):
        self.key, self.prob, self.duration_s, self.dims = int(key), float(prob), duration_s, dims
        self._cache: dict[int, tuple[float, float, np.ndarray] | None] = {}

    def burst(self, second: int) -> tuple[float, float, np.ndarray] | None:
        """(start s, duration s, peak vector in [-1, 1]) of the burst in ``second``, or None."""
        if second not in self._cache:
            rng = np.random.default_rng(np.random.SeedSequence([self.key, second + 2 ** 31]))
            burst = None
            if rng.random() < self.prob:
                dur = rng.uniform(*self.duration_s)
                burst = (second + rng.uniform(0.0, 1.0 - dur), dur, rng.uniform(-1, 1, self.dims))
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[second] = burst
        return self._cache[second]

    def overlaps(self, t0_s: float, t1_s: float) -> bool:
        """Whether a burst is under way anywhere in [t0_s, t1_s]."""
        for second in range(math.floor(t0_s), math.floor(t1_s) + 1):
            b = self.burst(second)
            if b is not None and b[0] <= t1_s and b[0] + b[1] >= t0_s:
                return True
        return False

    def value(self, t_s: float) -> np.ndarray | None:
        b = self.burst(math.floor(t_s))
        if b is None or not b[0] <= t_s <= b[0] + b[1]:
            return None
        return b[2] * math.sin(math.pi * (t_s - b[0]) / b[1]) ** 2


class VariedFlight(Trajectory):
    """A RandomFlight of a random pace, with stronger rotations and sudden bursts of motion.

    Per seed the pace is log-uniform over ``speed_range`` times ``speed_mps`` (slow drifts of a few cm/s
    to fast sweeps) and the rotation amplitudes are scaled by up to ``rotation_gain``. On top, in each
    second of the flight, a burst happens with probability ``burst_prob``: within 40-250 ms the camera
    jerks up to ``burst_m`` away and back and turns up to ``burst_deg`` (BurstSchedule).
    """

    def __init__(self, rng: np.random.Generator, speed_mps: float = 0.5, *, speed_range=(0.1, 2.5),
                 rotation_gain: float = 3.0, burst_prob: float = 0.3, burst_m: float = 0.08,
                 burst_deg: float = 4.0):
        pace = math.exp(rng.uniform(math.log(speed_range[0]), math.log(speed_range[1])))
        self.base = RandomFlight(rng, speed_mps=speed_mps * pace)
        self.base.amp[3:] *= rng.uniform(1.0, rotation_gain, (3, 1))
        self.bursts = BurstSchedule(int(rng.integers(2 ** 62)), burst_prob, (0.04, 0.25), 6)
        self.burst_scale = np.array([burst_m] * 3 + [math.radians(burst_deg)] * 3)

    def state(self, t_s: float) -> np.ndarray:
        s = self.base.state(t_s)
        bump = self.bursts.value(t_s)
        return s if bump is None else s + bump * self.burst_scale

    def pose(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        s = self.state(t_s)
        return rotation_xyz(s[3], s[4], s[5]), s[:3].copy()
