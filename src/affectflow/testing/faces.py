"""Small synthetic face files with labels, for tests and benchmarks of the models.

Unlike `affectflow corpus synth` (real faces in videos, aligned by `affectflow align`),
this skips video and alignment: each frame's chip directly encodes the label (a
bright bar whose height follows a smooth valence trace, buried in heavy per-frame
noise), so a CNN can learn it and temporal integration (the RNN) pays off. It
writes the AV+EC 2015 corpus layout (a short placeholder video per subject and
the ARFF gold standard) and `{subject}.h5` face files in the FaceTrack format,
with a few face-lost spans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..contracts import avec_labels, avec_video
from ..faces.facefile import FaceTrack, write_faces


def smooth_trace(n: int, rng: np.random.Generator, fps: float, amplitude: float = 0.6) -> np.ndarray:
    """A smooth random valence trace in [-amplitude, amplitude] (sum of slow sinusoids)."""
    t = np.arange(n) / fps
    trace = np.zeros(n)
    for period in (9.0, 5.0, 3.3):
        trace += rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    return (amplitude * trace / np.abs(trace).max()).astype(np.float32)


def chips_for_labels(values: np.ndarray, size: int, rng: np.random.Generator, noise: float = 1.0) -> np.ndarray:
    """Normalized-looking chips [T,S,S] float32: a bar at a height set by the value, plus noise."""
    n = len(values)
    rows = np.round((np.clip(values, -1, 1) + 1) / 2 * (size - 9) + 4).astype(int)
    chips = rng.normal(0.0, noise, (n, size, size)).astype(np.float32)
    bar = np.zeros((n, size), np.float32)
    bar[np.arange(n)[:, None], rows[:, None] + np.arange(-1, 2)[None, :]] = 1.5
    chips += bar[:, :, None] * (np.arange(size) >= size // 6)[None, None, :] * (np.arange(size) < size - size // 6)
    return chips


def write_arff(path: Path, subject: str, dimension: str, times: np.ndarray, values: np.ndarray) -> None:
    from ..synth import arff_text

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(arff_text(subject, dimension, times, values))


def write_placeholder_video(path: Path, frames: int, fps: float) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), (i * 3) % 255, np.uint8))
    writer.release()


def write_face_corpus(
    corpus_dir: Path,
    faces_dir: Path,
    *,
    train: int = 3,
    dev: int = 1,
    seconds: float = 12.0,
    fps: float = 25.0,
    size: int = 32,
    noise: float = 1.0,
    delay_s: float = 0.0,
    lost_fraction: float = 0.05,
    seed: int = 0,
) -> list[str]:
    """Write a labelled corpus folder and matching face files; returns the subject names.

    `delay_s`: the labels lag the face content by this much (annotation delay).
    """
    rng = np.random.default_rng(seed)
    subjects = [f"train_{i + 1}" for i in range(train)] + [f"dev_{i + 1}" for i in range(dev)]
    n = int(round(seconds * fps))
    delay = int(round(delay_s * fps))
    for subject in subjects:
        content = smooth_trace(n + delay, rng, fps)
        # labels follow the face with a lag: label(t) = face content(t - delay)
        face_values, label_values = content[delay : delay + n], content[:n]
        times = np.arange(n) / fps
        chips = chips_for_labels(face_values, size, rng, noise)
        found = np.ones(n, bool)
        lost = int(lost_fraction * n)
        if lost:
            start = int(rng.integers(0, n - lost))
            found[start : start + lost] = False
            chips[start : start + lost] = 0.0
        u8 = np.clip(chips * 40 + 128, 0, 255).astype(np.uint8)
        track = FaceTrack(
            chips=u8,
            normalized=chips.astype(np.float16),
            found=found,
            landmarks=np.zeros((n, 5, 2), np.float32),
            transform=np.zeros((n, 2, 3), np.float32),
            time=times,
            attrs={
                "fps": fps,
                "chip_size": size,
                "landmark_model": "synthetic",
                "normalization": "none",
                "subject": subject,
            },
        )
        write_faces(Path(faces_dir) / f"{subject}.h5", track)
        label_times = np.arange(n + 1) / fps  # one more label row than frames, as in AV+EC
        write_arff(
            Path(corpus_dir) / avec_labels("valence", subject),
            subject,
            "valence",
            label_times,
            np.append(label_values, label_values[-1]),
        )
        write_arff(
            Path(corpus_dir) / avec_labels("arousal", subject),
            subject,
            "arousal",
            label_times,
            smooth_trace(n + 1, rng, fps, amplitude=0.4),
        )  # unrelated to the faces
        write_placeholder_video(Path(corpus_dir) / avec_video(subject), n, fps)
    return subjects
