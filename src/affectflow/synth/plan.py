"""What decides a synthetic subject: the settings, its plan, and its valence/arousal traces.

A plan (photo, mirroring, identity, label delay, face-lost spans) comes from
``default_rng([seed, index, 1])``, the traces from ``default_rng([seed, index, 3])``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..contracts import DIMENSIONS, LABEL_STEP_S, PARTITIONS
from .identity import PHOTOS, random_identity


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


# --------------------------------------------------------------------------- smooth random signals


def filtered_noise_scale(sigma: float) -> float:
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
        return x * filtered_noise_scale(sigma)

    fast, slow = component(1.0), component(5.0)
    offset = rng.uniform(-0.2, 0.3)
    return np.tanh(0.4 * fast + 0.45 * slow + offset).astype(np.float64)


# --------------------------------------------------------------------------- plans


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


def face_visible(plan: SubjectPlan, times: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """True for frame times outside every face-lost span (widened by ``margin`` seconds)."""
    times = np.asarray(times, np.float64)
    visible = np.ones(times.shape, bool)
    for start, end, _ in plan.face_lost:
        visible &= ~((times >= start - margin) & (times <= end + margin))
    return visible


# --------------------------------------------------------------------------- traces


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
    grid_t = np.arange(-lead_in, settings.seconds + LABEL_STEP_S / 2 + 1.0, LABEL_STEP_S)
    latent = {dim: smooth_trace(rng, len(grid_t), LABEL_STEP_S) for dim in DIMENSIONS}
    rows = int(round(settings.seconds / LABEL_STEP_S)) + 1
    label_times = np.round(np.arange(rows) * LABEL_STEP_S, 6)
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
