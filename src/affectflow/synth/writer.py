"""The corpus folder: videos, the ARFF gold standard and ``synthetic.json``, written atomically.

:func:`planned_recordings` says where each subject's files go, before anything is written: the
writer puts them there, and the workflow plans its jobs on them (the corpus does not exist yet
when Snakemake parses the workflow).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..contracts import DIMENSIONS, LABEL_TIME_COLUMN, LABEL_VALUE_COLUMN, avec_labels, avec_video
from ..data.corpus import Recording
from ..errors import AffectflowError, fail
from ..io import atomic_dir
from .identity import photo_landmarks
from .plan import SubjectPlan, SynthSettings, plan_subject, subject_names, subject_traces
from .render import render_frames

METADATA_FILE = "synthetic.json"


def planned_recordings(root: str | os.PathLike, subjects: tuple[int, int, int]) -> list[Recording]:
    """The recordings of a synthetic corpus at ``root`` with (train, dev, test) subject counts
    ``subjects``, in corpus order: where :func:`synthesize_corpus` writes each subject's video and
    labels (AV+EC 2015 layout; every subject, test included, has both dimensions' labels)."""
    root = Path(root)
    recordings = []
    for subject, partition in subject_names(subjects):
        labels = {dim: root / avec_labels(dim, subject) for dim in DIMENSIONS}
        recordings.append(Recording(subject, partition, root / avec_video(subject), labels))
    return recordings


def arff_text(subject: str, dimension: str, times: np.ndarray, values: np.ndarray) -> str:
    """A gold-standard ARFF file in the official AV+EC 2015 format (liac-arff reads it, scipy does not)."""
    lines = [
        f"@relation GOLDSTANDARD_{dimension.upper()}",
        "",
        "@attribute Instance_name string",
        f"@attribute {LABEL_TIME_COLUMN} numeric",
        f"@attribute {LABEL_VALUE_COLUMN} numeric",
        "",
        "",
        "@data",
        "",
    ]
    lines += [f"{subject},{t:.6f},{v:.6f}" for t, v in zip(times, values)]
    return "\n".join(lines) + "\n"


def write_subject(settings: SynthSettings, plan: SubjectPlan, landmarks: np.ndarray, recording: Recording) -> None:
    """Write one subject's video and ARFF files where ``recording`` (of :func:`planned_recordings`) says."""
    import cv2

    cv2.setNumThreads(1)  # subjects run in parallel processes
    traces = subject_traces(settings, plan)
    for dim in DIMENSIONS:
        recording.labels[dim].write_text(arff_text(plan.subject, dim, traces.label_times, traces.gold[dim]))

    video_path = recording.video
    width, height = settings.size
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), settings.fps, (width, height))
    if not writer.isOpened():
        raise fail(video_path, "OpenCV cannot write mp4v video")
    try:
        for frame in render_frames(settings, plan, landmarks, traces):
            writer.write(frame)
    finally:
        writer.release()


def _write_job(args) -> str:
    write_subject(*args)
    return args[1].subject


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
    plans = [
        plan_subject(settings, i, rec.subject, rec.partition)
        for i, rec in enumerate(planned_recordings(out, settings.subjects))
    ]
    landmarks = {name: photo_landmarks(name) for name in sorted({p.photo for p in plans})}
    out = Path(out)
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / METADATA_FILE).is_file()):
        # Replacing a synthetic corpus is fine; anything else might be someone's data.
        raise fail(out, f"exists and is not a synthetic corpus (no {METADATA_FILE}): refusing to replace it")
    workers = max(1, min(len(plans), workers or os.cpu_count() or 1))
    with atomic_dir(out) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; a corpus is ordinary data
        recordings = planned_recordings(tmp, settings.subjects)
        for folder in sorted({path.parent for rec in recordings for path in (rec.video, *rec.labels.values())}):
            folder.mkdir(parents=True, exist_ok=True)
        jobs = [(settings, plan, landmarks[plan.photo], rec) for plan, rec in zip(plans, recordings)]
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="synth", unit="subject", disable=not progress)
        if workers == 1:
            for job in jobs:
                _write_job(job)
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads (torch)
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                for _ in pool.map(_write_job, jobs):
                    bar.update()
        bar.close()
        metadata = {"settings": asdict(settings), "subjects": [asdict(p) for p in plans]}
        (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=1) + "\n")
    return out


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
