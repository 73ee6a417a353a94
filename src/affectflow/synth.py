"""The embedded synthetic corpus (docs/design.md, section 5), written in the AV+EC 2015 layout.

No licensed data can ship, so ``affectflow corpus synth`` renders face videos
from the real frontal face photographs that installed packages carry:

- ``skimage.data.astronaut()`` (scikit-image): Eileen Collins, NASA portrait,
  "no known copyright restrictions, released into the public domain"
  (scikit-image's own note; NASA Great Images database).
- ``matplotlib/mpl-data/sample_data/grace_hopper.jpg`` (matplotlib): Grace
  Hopper, official U.S. Navy portrait (1984), a work of the U.S. federal
  government and so in the public domain.

Nothing else usable is installed: scikit-image's ``lfw_subset`` faces are
25x25 pixels and ``camera`` is a profile; Debian's opencv-doc (a 95 MB
download, not installed) and libdlib's examples hold a few small faces in
photographs of unclear licence. Two photographs cannot give one person per
subject, so every subject gets its own *identity* made from one of them by
identity-specific geometric warps (face width and height, eye spacing, nose
length, mouth position and width, chin), mirroring, skin tone and gamma, and
its own background: dev and test identities differ from every training one,
though they share the two underlying people.

dlib's HOG detector and 68-point shape model (from face_recognition_models)
run once per source photograph and place the warps. Per frame:

- valence and arousal are smooth random traces in [-1, 1]; the expression
  follows them through a geometric warp built as a linear combination of
  precomputed displacement fields (mouth corners up/down and mouth opening
  with valence, brows and eye opening with arousal), applied with cv2.remap;
- the expression gets per-frame jitter, and the gold standard written to the
  ARFF files lags the expression by ``label_delay`` seconds (1-2 s per
  subject), as human annotations do: both make a single frame a noisy cue
  and a window of frames a better one;
- head motion (translation, roll, scale), lighting drift (gain and a
  directional gradient), sensor noise and varying blur;
- a few short spans lose the face (it leaves the frame or is covered).

Everything follows from the seed and the subject's index: the same seed
gives byte-identical ARFF files and identical decoded frames. The spans,
delays and identity settings are written to ``synthetic.json`` beside the
corpus so that tests (and curious users) know which frames have a face.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import AffectflowError, fail
from .io import atomic_dir

LABEL_STEP = 0.04  # the AV+EC 2015 gold standard has a row every 40 ms, from t = 0
PARTITIONS = ("train", "dev", "test")
DIMENSIONS = ("valence", "arousal")
PHOTOS = ("astronaut", "grace_hopper")
METADATA_FILE = "synthetic.json"

# Geometry of the rendered face, in units of the nominal inter-ocular distance.
EYE_DISTANCE = 56.0  # pixels between eye centres at 640x480 (dlib's face box ~ 130 px)
PATCH_HALF = 2.9  # half the patch side, in inter-ocular distances


@dataclass(frozen=True)
class SynthSettings:
    seed: int = 0
    subjects: tuple[int, int, int] = (3, 3, 3)  # train, dev, test counts
    seconds: float = 60.0
    fps: float = 25.0
    size: tuple[int, int] = (640, 480)  # width, height
    jitter: float = 0.3  # std of the per-frame expression jitter (valence/arousal units)
    delay_range: tuple[float, float] = (1.0, 2.0)  # label delay in seconds
    noise: float = 2.0  # std of the sensor noise, grey levels (mp4v smooths much of it away)


@dataclass
class SubjectPlan:
    """Everything that decides one subject's recording (written to synthetic.json)."""

    subject: str
    partition: str
    index: int
    photo: str
    mirrored: bool
    identity: dict[str, float]
    label_delay: float
    face_lost: list[tuple[float, float, str]] = field(default_factory=list)  # (start s, end s, kind)


# --------------------------------------------------------------------------- photos


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """One source photograph as BGR uint8 (cached: treat as read-only)."""
    import cv2

    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    if name == "grace_hopper":
        import matplotlib.cbook

        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise fail(path, "cannot read the sample photograph")
        return image
    raise ValueError(f"unknown photo {name!r}")


@functools.lru_cache(maxsize=1)
def _dlib_models():
    import dlib

    from .align import landmark_model_path  # the one place that finds dlib's models

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(landmark_model_path(68)))


@functools.lru_cache(maxsize=None)
def photo_landmarks(name: str) -> np.ndarray:
    """68 dlib landmarks (float32 [68, 2], x/y pixels) of a source photo; computed once per process."""
    import cv2

    detector, predictor = _dlib_models()
    image = _photo(name)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    faces = detector(gray, 1)
    if len(faces) == 0:
        raise AffectflowError(f"dlib finds no face in the source photo {name}")
    box = max(faces, key=lambda r: r.width() * r.height())
    shape = predictor(gray, box)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


# --------------------------------------------------------------------------- displacement fields


def _rbf_field(shape: tuple[int, int], points, displacements, sigmas) -> np.ndarray:
    """Sum of Gaussian bumps: float32 [H, W, 2] displacement (dx, dy) in pixels."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.zeros((height, width, 2), np.float32)
    for (px, py), (dx, dy), sigma in zip(points, displacements, sigmas):
        weight = np.exp(-((xs - px) ** 2 + (ys - py) ** 2) / (2.0 * sigma**2))
        out[..., 0] += dx * weight
        out[..., 1] += dy * weight
    return out


def _field_at(field_: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Displacement at (rounded) point positions."""
    h, w = field_.shape[:2]
    xs = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
    ys = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
    return field_[ys, xs]


def _eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return landmarks[36:42].mean(0), landmarks[42:48].mean(0)


def identity_field(landmarks: np.ndarray, shape: tuple[int, int], identity: dict[str, float]) -> np.ndarray:
    """Forward displacement that turns the source face into a subject's identity."""
    left_eye, right_eye = _eye_centres(landmarks)
    d = float(np.linalg.norm(right_eye - left_eye))
    centre = landmarks[27:36].mean(0)
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    window = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2.0 * (1.4 * d) ** 2))
    out = np.zeros((height, width, 2), np.float32)
    # Face width / height: a windowed scaling about the face centre.
    out[..., 0] += identity["face_width"] * (xs - centre[0]) * window
    out[..., 1] += identity["face_height"] * (ys - centre[1]) * window
    points, moves, sigmas = [], [], []
    spread = identity["eye_spacing"] * d
    points += [left_eye, right_eye]
    moves += [(-spread, 0.0), (spread, 0.0)]
    sigmas += [0.35 * d] * 2
    points.append(landmarks[33])  # nose tip: nose length
    moves.append((0.0, identity["nose_length"] * d))
    sigmas.append(0.3 * d)
    mouth = landmarks[48:68].mean(0)
    points.append(mouth)
    moves.append((0.0, identity["mouth_drop"] * d))
    sigmas.append(0.35 * d)
    widen = identity["mouth_width"] * d
    points += [landmarks[48], landmarks[54]]
    moves += [(-widen, 0.0), (widen, 0.0)]
    sigmas += [0.22 * d] * 2
    points.append(landmarks[8])  # chin
    moves.append((0.0, identity["chin"] * d))
    sigmas.append(0.45 * d)
    out += _rbf_field(shape, points, moves, sigmas)
    return out


# Expression components: name -> function(landmarks, d) -> (points, displacements, sigmas) for coefficient 1.
def _smile(lm, d):
    # Mouth corners up and outward (a negative coefficient pulls them down and in), cheeks follow.
    left, right = lm[48], lm[54]
    cheek_l, cheek_r = (lm[48] + lm[31] + lm[2]) / 3, (lm[54] + lm[35] + lm[14]) / 3
    return (
        [left, right, cheek_l, cheek_r, lm[51], lm[57]],
        [(-0.07 * d, -0.16 * d), (0.07 * d, -0.16 * d), (0, -0.05 * d), (0, -0.05 * d), (0, -0.02 * d), (0, -0.03 * d)],
        [0.17 * d, 0.17 * d, 0.25 * d, 0.25 * d, 0.12 * d, 0.15 * d],
    )


def _mouth_open(lm, d):
    lower = lm[[56, 57, 58, 65, 66, 67]].mean(0)
    return (
        [lower, lm[8], lm[62]],
        [(0, 0.16 * d), (0, 0.12 * d), (0, -0.03 * d)],
        [0.2 * d, 0.35 * d, 0.12 * d],
    )


def _brows(lm, d):
    points = [lm[i] for i in range(17, 27)]
    return points, [(0, -0.11 * d)] * len(points), [0.16 * d] * len(points)


def _frown(lm, d):
    centre_x = lm[27, 0]
    points = [lm[20], lm[21], lm[22], lm[23]]
    moves = [(float(np.sign(centre_x - p[0])) * 0.06 * d, 0.07 * d) for p in points]
    return points, moves, [0.12 * d] * 4


def _eyes(lm, d):
    upper = [lm[i] for i in (37, 38, 43, 44)]
    lower = [lm[i] for i in (40, 41, 46, 47)]
    return upper + lower, [(0, -0.035 * d)] * 4 + [(0, 0.015 * d)] * 4, [0.08 * d] * 8


EXPRESSIONS = {"smile": _smile, "mouth_open": _mouth_open, "brows": _brows, "frown": _frown, "eyes": _eyes}


def expression_coefficients(valence: np.ndarray, arousal: np.ndarray) -> np.ndarray:
    """[T, 5] weights of the expression fields (order of EXPRESSIONS) from valence/arousal."""
    valence = np.asarray(valence, np.float32)
    arousal = np.asarray(arousal, np.float32)
    return np.stack(
        [
            valence,  # smile / corners down
            np.clip(0.35 + 0.35 * arousal + 0.25 * valence, 0.0, 1.2),  # mouth opening
            arousal,  # brows up / down
            np.clip(-valence, 0.0, None),  # frown for negative valence
            arousal,  # eyes wide / narrow
        ],
        axis=1,
    )


# --------------------------------------------------------------------------- identities


@dataclass
class Identity:
    """A subject's face, ready to render: patch, alpha mask and expression fields."""

    patch: np.ndarray  # float32 [P, P, 3] BGR
    mask: np.ndarray  # float32 [P, P] alpha
    roi: tuple[int, int, int, int]  # x0, y0, x1, y1 of the expression region in the patch
    grid: np.ndarray  # float32 [h, w, 2] absolute patch coordinates of the region
    fields: np.ndarray  # float32 [K, h, w, 2] backward displacement per unit coefficient
    landmarks: np.ndarray  # float32 [68, 2] in patch coordinates
    background: np.ndarray  # uint8 [H, W, 3]


def random_identity(rng: np.random.Generator) -> dict[str, float]:
    return {
        "face_width": float(rng.uniform(-0.08, 0.08)),
        "face_height": float(rng.uniform(-0.08, 0.08)),
        "eye_spacing": float(rng.uniform(-0.07, 0.07)),
        "nose_length": float(rng.uniform(-0.07, 0.1)),
        "mouth_drop": float(rng.uniform(-0.05, 0.08)),
        "mouth_width": float(rng.uniform(-0.06, 0.08)),
        "chin": float(rng.uniform(-0.04, 0.12)),
        "gamma": float(rng.uniform(0.75, 1.3)),
        "tint_b": float(rng.uniform(0.8, 1.15)),
        "tint_g": float(rng.uniform(0.85, 1.1)),
        "tint_r": float(rng.uniform(0.85, 1.2)),
    }


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A room-like backdrop: a colour gradient with a few soft blocks."""
    import cv2

    top, bottom = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp) * np.ones((1, width, 1), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(40, width // 2)), y0 + int(rng.integers(40, height // 2))
        cv2.rectangle(image, (x0, y0), (x1, y1), rng.uniform(20, 235, 3).tolist(), -1)
    image = cv2.GaussianBlur(image, (0, 0), 3.0)
    return np.clip(image, 0, 255).astype(np.uint8)


def build_identity(
    plan: SubjectPlan, landmarks: np.ndarray, size: tuple[int, int], eye_distance: float, rng
) -> Identity:
    """Cut the source face into a patch with eyes level at nominal size, then apply the identity."""
    import cv2

    photo = _photo(plan.photo)
    left_eye, right_eye = _eye_centres(landmarks)
    d = float(np.linalg.norm(right_eye - left_eye))
    angle = float(np.degrees(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])))
    centre = (left_eye + right_eye) / 2 + np.array([0.0, 0.55 * d], np.float32)  # between eyes and mouth
    scale = eye_distance / d
    half = int(round(PATCH_HALF * eye_distance))
    side = 2 * half
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, scale)
    matrix[:, 2] += np.array([half, half]) - centre
    patch = cv2.warpAffine(photo, matrix, (side, side), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    lm = (np.c_[landmarks, np.ones(68)] @ matrix.T).astype(np.float32)

    # Identity warp (forward field F: a point p moves to p + F(p); sampled backwards as x - F(x)).
    forward = identity_field(lm, (side, side), plan.identity)
    grid = np.dstack(np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32)))
    backward = grid - forward
    patch = cv2.remap(patch, backward[..., 0], backward[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    lm = lm + _field_at(forward, lm)
    if plan.mirrored:
        patch = patch[:, ::-1].copy()
        lm = lm.copy()
        lm[:, 0] = side - 1 - lm[:, 0]

    # Skin tone and gamma.
    ident = plan.identity
    lut = (255.0 * (np.arange(256) / 255.0) ** ident["gamma"]).astype(np.float32)
    patch = lut[patch] * np.array([ident["tint_b"], ident["tint_g"], ident["tint_r"]], np.float32)
    patch = np.clip(patch, 0, 255).astype(np.float32)

    # Alpha: head ellipse (with hair) plus neck and shoulders down to the patch edge.
    d_new = float(np.linalg.norm(np.subtract(*_eye_centres(lm))))
    face_centre = lm[27:36].mean(0)
    mask = np.zeros((side, side), np.float32)
    head_centre = (int(face_centre[0]), int(face_centre[1] - 0.35 * d_new))
    cv2.ellipse(mask, head_centre, (int(1.45 * d_new), int(1.95 * d_new)), 0, 0, 360, 1.0, -1)
    chin_y = int(lm[8, 1])
    neck = np.array(
        [
            [face_centre[0] - 0.65 * d_new, chin_y - 0.3 * d_new],
            [face_centre[0] + 0.65 * d_new, chin_y - 0.3 * d_new],
            [face_centre[0] + 2.6 * d_new, side],
            [face_centre[0] - 2.6 * d_new, side],
        ],
        np.int32,
    )
    cv2.fillConvexPoly(mask, neck, 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), 4.0)
    # Shoulders fade out towards the patch's lower edge instead of ending in a straight cut.
    fade = np.clip((side - np.arange(side, dtype=np.float32)) / (0.3 * side), 0.0, 1.0)
    mask *= fade[:, None]

    # Expression fields over the region around the inner face.
    x0, y0 = np.floor(lm.min(0) - 0.6 * d_new).astype(int)
    x1, y1 = np.ceil(lm.max(0) + 0.6 * d_new).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, side), min(y1, side)
    region = (y1 - y0, x1 - x0)
    local = lm - np.array([x0, y0], np.float32)
    fields = np.stack([_rbf_field(region, *build(local, d_new)) for build in EXPRESSIONS.values()])
    return Identity(
        patch=patch,
        mask=mask,
        roi=(int(x0), int(y0), int(x1), int(y1)),
        grid=grid[y0:y1, x0:x1].copy(),
        fields=-fields,  # backward sampling: x - F(x)
        landmarks=lm,
        background=_background(rng, *size),
    )


# --------------------------------------------------------------------------- traces and plans


def _filtered_noise_scale(sigma: float) -> float:
    """1 / std of unit white noise after a Gaussian filter of ``sigma`` samples.

    The theoretical value, not the sample std: a short recording of a slow
    component must stay small rather than be blown up to unit variance.
    """
    return float(np.sqrt(2.0 * np.sqrt(np.pi) * sigma))


def smooth_trace(rng: np.random.Generator, n: int, step: float) -> np.ndarray:
    """A smooth random trace in (-1, 1): fast (~1 s) and slow (~6 s) filtered noise through tanh."""
    from scipy.ndimage import gaussian_filter1d

    def component(sigma_s: float) -> np.ndarray:
        sigma = sigma_s / step
        pad = int(4 * sigma)
        x = gaussian_filter1d(rng.standard_normal(n + 2 * pad), sigma)[pad : pad + n]
        return x * _filtered_noise_scale(sigma)

    fast, slow = component(1.0), component(5.0)
    offset = rng.uniform(-0.2, 0.3)
    return np.tanh(0.4 * fast + 0.45 * slow + offset).astype(np.float64)


def _smooth_motion(rng: np.random.Generator, n: int, fps: float, sigma_s: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    sigma = sigma_s * fps
    pad = int(4 * sigma)
    x = gaussian_filter1d(rng.standard_normal(n + 2 * pad), sigma)[pad : pad + n]
    return x * _filtered_noise_scale(sigma)


def subject_names(counts: tuple[int, int, int]) -> list[tuple[str, str]]:
    """[(subject, partition)] in corpus order: train_1.., dev_1.., test_1.."""
    return [(f"{part}_{i + 1}", part) for part, count in zip(PARTITIONS, counts) for i in range(count)]


def face_lost_spans(rng: np.random.Generator, seconds: float) -> list[tuple[float, float, str]]:
    """A few short non-overlapping spans (0.6-1.6 s), one per ~20 s, alternating exit/occlusion."""
    count = max(1, int(round(seconds / 20.0)))
    slots = np.linspace(1.0, seconds - 1.0, count + 1)
    spans = []
    first_kind = int(rng.integers(0, 2))
    for i in range(count):
        length = float(rng.uniform(0.6, 1.6))
        lo, hi = slots[i], max(slots[i], slots[i + 1] - length)
        start = float(rng.uniform(lo, hi))
        kind = ("exit", "occlusion")[(first_kind + i) % 2]
        spans.append((round(start, 3), round(min(start + length, seconds), 3), kind))
    return spans


def plan_subject(settings: SynthSettings, index: int, subject: str, partition: str) -> SubjectPlan:
    rng = np.random.default_rng([settings.seed, index, 1])
    return SubjectPlan(
        subject=subject,
        partition=partition,
        index=index,
        photo=PHOTOS[index % len(PHOTOS)],
        mirrored=bool(rng.integers(0, 2)),
        identity=random_identity(rng),
        label_delay=round(float(rng.uniform(*settings.delay_range)), 3),
        face_lost=face_lost_spans(rng, settings.seconds),
    )


@dataclass
class SubjectTraces:
    """What a subject's face shows and what its labels say."""

    label_times: np.ndarray  # float64 [N]: 0, 0.04, ..., seconds
    gold: dict[str, np.ndarray]  # dimension -> float64 [N]: the ARFF gold standard (lags the face)
    frame_times: np.ndarray  # float64 [T]
    expressed: dict[str, np.ndarray]  # dimension -> float64 [T]: the smooth trace the face follows
    shown: dict[str, np.ndarray]  # dimension -> float64 [T]: expressed + per-frame jitter (what is rendered)


def subject_traces(settings: SynthSettings, plan: SubjectPlan) -> SubjectTraces:
    """Valence/arousal of one subject: gold(t) = expressed(t - label_delay); shown = expressed + jitter."""
    rng = np.random.default_rng([settings.seed, plan.index, 3])
    # Latent traces on the 40 ms grid from -(max delay + 1) s, so that lagged labels exist from t = 0.
    lead_in = settings.delay_range[1] + 1.0
    grid_t = np.arange(-lead_in, settings.seconds + LABEL_STEP / 2 + 1.0, LABEL_STEP)
    latent = {dim: smooth_trace(rng, len(grid_t), LABEL_STEP) for dim in DIMENSIONS}
    rows = int(round(settings.seconds / LABEL_STEP)) + 1
    label_times = np.round(np.arange(rows) * LABEL_STEP, 6)
    frame_times = np.arange(int(round(settings.seconds * settings.fps))) / settings.fps
    expressed = {dim: np.interp(frame_times, grid_t, latent[dim]) for dim in DIMENSIONS}
    jitter = settings.jitter * rng.standard_normal((len(frame_times), len(DIMENSIONS)))
    return SubjectTraces(
        label_times=label_times,
        gold={dim: np.interp(label_times - plan.label_delay, grid_t, latent[dim]) for dim in DIMENSIONS},
        frame_times=frame_times,
        expressed=expressed,
        shown={dim: np.clip(expressed[dim] + jitter[:, k], -1.3, 1.3) for k, dim in enumerate(DIMENSIONS)},
    )


def face_visible(plan: SubjectPlan, times: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """True for frame times outside every face-lost span (widened by ``margin`` seconds)."""
    times = np.asarray(times, np.float64)
    visible = np.ones(times.shape, bool)
    for start, end, _ in plan.face_lost:
        visible &= ~((times >= start - margin) & (times <= end + margin))
    return visible


# --------------------------------------------------------------------------- rendering


def arff_text(subject: str, dimension: str, times: np.ndarray, values: np.ndarray) -> str:
    """A gold-standard ARFF file in the official AV+EC 2015 format (liac-arff reads it, scipy does not)."""
    lines = [
        f"@relation GOLDSTANDARD_{dimension.upper()}",
        "",
        "@attribute Instance_name string",
        "@attribute frameTime numeric",
        "@attribute GoldStandard numeric",
        "",
        "",
        "@data",
        "",
    ]
    lines += [f"{subject},{t:.6f},{v:.6f}" for t, v in zip(times, values)]
    return "\n".join(lines) + "\n"


def _over(background: np.ndarray, premultiplied: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Lit premultiplied BGRA over a BGR box, all uint8 (saturating cv2 ops: several times numpy's speed)."""
    import cv2

    transparency = cv2.cvtColor(cv2.bitwise_not(cv2.extractChannel(premultiplied, 3)), cv2.COLOR_GRAY2BGR)
    behind = cv2.multiply(background, transparency, scale=1.0 / 255.0)
    front = cv2.multiply(
        cv2.cvtColor(premultiplied, cv2.COLOR_BGRA2BGR), cv2.merge([light, light, light]), dtype=cv2.CV_8U
    )
    return cv2.add(behind, front)


def render_subject(settings: SynthSettings, plan: SubjectPlan, landmarks: np.ndarray, out_dir: Path) -> None:
    """Write one subject's video and ARFF files under ``out_dir`` (the corpus root being built)."""
    import cv2

    cv2.setNumThreads(1)  # subjects run in parallel processes
    width, height = settings.size
    fps = settings.fps
    frames = int(round(settings.seconds * fps))
    rng = np.random.default_rng([settings.seed, plan.index, 2])
    # The face keeps its proportion of the frame whatever the frame size.
    eye_distance = EYE_DISTANCE * min(width / 640, height / 480)
    identity = build_identity(plan, landmarks, settings.size, eye_distance, rng)

    traces = subject_traces(settings, plan)
    for dim in DIMENSIONS:
        path = out_dir / "ratings_gold_standard" / dim / f"{plan.subject}.arff"
        path.write_text(arff_text(plan.subject, dim, traces.label_times, traces.gold[dim]))
    frame_times = traces.frame_times
    coefficients = expression_coefficients(traces.shown["valence"], traces.shown["arousal"])

    # Head motion, lighting, blur: smooth per-frame trajectories.
    # Bounded so that the face stays in the frame and within the roll a frontal detector handles.
    dx = np.clip(0.12 * width * _smooth_motion(rng, frames, fps, 1.5), -0.25 * width, 0.25 * width)
    dy = np.clip(0.06 * height * _smooth_motion(rng, frames, fps, 1.5), -0.12 * height, 0.1 * height)
    roll = np.clip(3.5 * _smooth_motion(rng, frames, fps, 1.2), -8.0, 8.0)
    scale = np.clip(np.exp(0.1 * _smooth_motion(rng, frames, fps, 3.0)) * rng.uniform(0.95, 1.15), 0.85, 1.3)
    # Light = gain + gradient over the frame; the bounds keep it above 0.05 everywhere.
    gain = np.clip(1.0 + 0.15 * _smooth_motion(rng, frames, fps, 4.0), 0.6, 1.4)
    light_x = np.clip(0.25 * _smooth_motion(rng, frames, fps, 5.0), -0.35, 0.35)
    light_y = np.clip(0.12 * _smooth_motion(rng, frames, fps, 5.0), -0.2, 0.2)
    blur = np.clip(0.8 + 0.6 * _smooth_motion(rng, frames, fps, 2.0), 0.0, 2.0)
    base_x, base_y = width / 2 + rng.uniform(-0.05, 0.05) * width, height * 0.52

    # Face-lost spans: exits push the head out of frame, occlusions cover it.
    exit_offset = np.zeros(frames)
    occluded = np.zeros(frames, bool)
    for start, end, kind in plan.face_lost:
        inside = (frame_times >= start) & (frame_times <= end)
        if kind == "exit":
            # Ramp out over the first 30% of the span, back in over the last 30%.
            phase = np.clip(np.minimum(frame_times - start, end - frame_times) / (0.3 * (end - start)), 0, 1)
            exit_offset += np.where(inside, phase, 0.0)
        else:
            occluded |= inside
    exit_direction = 1.0 if rng.integers(0, 2) else -1.0

    # Sensor noise: a bank of precomputed noise frames (signed noise split into +/- parts for saturating adds).
    bank = []
    for _ in range(8):
        noise = rng.normal(0.0, settings.noise, (height, width, 1)).astype(np.float32)
        noise = np.repeat(noise, 3, axis=2)
        bank.append((np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)))
    noise_pick = rng.integers(0, len(bank), frames)
    occluder_colour = rng.uniform(60, 200, 3).tolist()

    side = identity.patch.shape[0]
    x0, y0, x1, y1 = identity.roi
    patch_centre = identity.landmarks[27:36].mean(0)
    # Premultiplied BGRA: one remap, one blur and one warp move colour and alpha together.
    patch = np.dstack([identity.patch * identity.mask[..., None], 255.0 * identity.mask])
    patch = np.clip(np.rint(patch), 0, 255).astype(np.uint8)
    # Lighting is fixed in the room: a gain and a gradient over frame coordinates.
    ramp_y, ramp_x = np.mgrid[-1 : 1 : height * 1j, -1 : 1 : width * 1j].astype(np.float32)

    video_path = out_dir / "recordings_video" / f"{plan.subject}.mp4"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise fail(video_path, "OpenCV cannot write mp4v video")
    try:
        for i in range(frames):
            frame = identity.background.copy()
            # Expression: warp the inner-face region by the weighted displacement fields.
            warp = identity.grid + np.tensordot(coefficients[i], identity.fields, axes=1)
            face = patch.copy()
            face[y0:y1, x0:x1] = cv2.remap(patch, warp[..., 0], warp[..., 1], cv2.INTER_LINEAR)
            if blur[i] > 0.3:
                face = cv2.GaussianBlur(face, (0, 0), float(blur[i]))
            # Head pose: a similarity from patch to frame, rendered into the covered box only.
            cx = base_x + dx[i] + exit_direction * exit_offset[i] * (width / 2 + side)
            cy = base_y + dy[i]
            centre = (float(patch_centre[0]), float(patch_centre[1]))
            matrix = cv2.getRotationMatrix2D(centre, float(roll[i]), float(scale[i]))
            matrix[:, 2] += np.array([cx, cy]) - patch_centre
            corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ matrix.T
            fx0, fy0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
            fx1, fy1 = np.minimum(np.ceil(corners.max(0)).astype(int), [width, height])
            if fx1 > fx0 and fy1 > fy0:
                matrix[:, 2] -= [fx0, fy0]
                fg = cv2.warpAffine(face, matrix, (int(fx1 - fx0), int(fy1 - fy0)), flags=cv2.INTER_LINEAR)
                light = (
                    float(gain[i])
                    + float(light_x[i]) * ramp_x[fy0:fy1, fx0:fx1]
                    + float(light_y[i]) * ramp_y[fy0:fy1, fx0:fx1]
                )
                frame[fy0:fy1, fx0:fx1] = _over(frame[fy0:fy1, fx0:fx1], fg, light)
            if occluded[i]:
                axes = (int(1.7 * eye_distance * scale[i]), int(1.9 * eye_distance * scale[i]))
                cv2.ellipse(frame, (int(cx), int(cy)), axes, float(roll[i]), 0, 360, occluder_colour, -1)
            plus, minus = bank[noise_pick[i]]
            cv2.add(frame, plus, dst=frame)
            cv2.subtract(frame, minus, dst=frame)
            writer.write(frame)
    finally:
        writer.release()


def _render_job(args) -> str:
    settings, plan, landmarks, out_dir = args
    render_subject(settings, plan, landmarks, Path(out_dir))
    return plan.subject


def synthesize_corpus(
    out: str | os.PathLike,
    *,
    seed: int = 0,
    subjects: tuple[int, int, int] = (3, 3, 3),
    seconds: float = 60.0,
    fps: float = 25.0,
    size: tuple[int, int] = (640, 480),
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Write the synthetic corpus to ``out`` atomically (AV+EC 2015 layout); return its path."""
    settings = SynthSettings(
        seed=seed, subjects=tuple(subjects), seconds=float(seconds), fps=float(fps), size=tuple(size)
    )
    if len(settings.subjects) != 3 or min(settings.subjects) < 0 or sum(settings.subjects) == 0:
        raise AffectflowError(f"--subjects needs three counts (train,dev,test), not all zero: {subjects}")
    if settings.seconds < 2 or settings.fps <= 0 or min(settings.size) < 160:
        raise AffectflowError("synthetic corpus needs >= 2 s, fps > 0 and frames of at least 160x160")
    plans = [plan_subject(settings, i, s, p) for i, (s, p) in enumerate(subject_names(settings.subjects))]
    landmarks = {name: photo_landmarks(name) for name in sorted({p.photo for p in plans})}
    out = Path(out)
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / METADATA_FILE).is_file()):
        # Replacing a synthetic corpus is fine; anything else might be someone's data.
        raise fail(out, f"exists and is not a synthetic corpus (no {METADATA_FILE}): refusing to replace it")
    workers = max(1, min(len(plans), workers or os.cpu_count() or 1))
    with atomic_dir(out) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; a corpus is ordinary data
        (tmp / "recordings_video").mkdir()
        for dim in DIMENSIONS:
            (tmp / "ratings_gold_standard" / dim).mkdir(parents=True)
        jobs = [(settings, plan, landmarks[plan.photo], str(tmp)) for plan in plans]
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="synth", unit="subject", disable=not progress)
        if workers == 1:
            for job in jobs:
                _render_job(job)
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads (torch)
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for _ in pool.map(_render_job, jobs):
                    bar.update()
        bar.close()
        metadata = {"settings": asdict(settings), "subjects": [asdict(p) for p in plans]}
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=1) + "\n")
    return out


@dataclass
class DetectionRate:
    """dlib HOG hits on sampled frames: where a face is meant to be, and in the core of face-lost spans."""

    found: int = 0
    meant: int = 0
    found_in_lost: int = 0
    lost: int = 0

    @property
    def rate(self) -> float:
        return self.found / self.meant if self.meant else float("nan")

    def __str__(self) -> str:
        return (
            f"dlib HOG found the face in {self.found}/{self.meant} sampled frames meant to have one "
            f"({100 * self.rate:.1f}%), and in {self.found_in_lost}/{self.lost} frames inside face-lost spans"
        )


def face_detection_rate(corpus: str | os.PathLike, every: int = 10, upsample: int = 0) -> DetectionRate:
    """Run dlib's HOG frontal face detector (Python API) on every ``every``-th frame of a synthetic corpus.

    Frames within 0.1 s of a face-lost span are not counted as meant to have
    a face; frames 0.35 s or more inside one count as lost.
    """
    import dlib

    from .video import iter_frames

    detector = dlib.get_frontal_face_detector()
    _, plans = read_metadata(corpus)
    result = DetectionRate()
    for plan in plans:
        for index, (time, frame) in enumerate(
            iter_frames(Path(corpus) / "recordings_video" / f"{plan.subject}.mp4", gray=True)
        ):
            if index % every:
                continue
            hit = len(detector(frame, upsample)) > 0
            if face_visible(plan, [time], margin=0.1)[0]:
                result.meant += 1
                result.found += hit
            elif not face_visible(plan, [time], margin=-0.35)[0]:
                result.lost += 1
                result.found_in_lost += hit
    return result


def read_metadata(corpus: str | os.PathLike) -> tuple[SynthSettings, list[SubjectPlan]]:
    """The settings and subject plans written beside a synthetic corpus."""
    path = Path(corpus) / METADATA_FILE
    if not path.is_file():
        raise fail(path, "not a synthetic corpus (no metadata file)")
    data = json.loads(path.read_text())
    settings = data["settings"]
    settings = SynthSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
    plans = []
    for p in data["subjects"]:
        p["face_lost"] = [tuple(span) for span in p["face_lost"]]
        plans.append(SubjectPlan(**p))
    return settings, plans
