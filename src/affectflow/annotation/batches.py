"""Batches of an archive: the plan, each batch's round, and the two batch jobs.

Batches: the workflow groups the videos into batches of ``annotate.batch`` videos so that a
cluster gets one CPU job (alignment, ``align-batch``) and one GPU job (``annotate-batch``: the
models load once) per batch, not two per video. Which batch a video belongs to is kept in a plan
(``batches/plan.tsv``, id and batch): videos new to the plan form new batches of their own, so a
rerun after adding videos aligns and annotates only those, and every Snakemake process of a run
(each cluster job parses the workflow again) sees the same batches. A batch job skips the
members that are already done, whichever process did them, so a batch that crashed resumes where
it stopped.

Rounds: the workflow names a batch's work folder and marker after the batch's *round*,
``{batch}-{state}``, where the state is a digest of what the batch has left to do (its pending
members and their videos' fingerprints, the models, the retry flag). A batch that still holds a
pending video after a crash, a replaced video or a deleted outcome is in a new round, whose marker
does not exist, so Snakemake runs it again; no target file can hide pending work. A new round's
alignment takes over the face files of the batch's earlier rounds that are still valid (same
video, same models), so a crash after alignment costs no second alignment.

Data failures are data: a video that cannot be aligned or annotated gets a failure outcome and
its batch goes on. Anything else (out of memory, killed, a time limit) fails the job, so that the
cluster's retries apply.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..contracts import DEFAULT_FACE_RULE, VIDEO_ID_PATTERN
from ..errors import AffectflowError, fail
from .outcomes import (
    is_done,
    model_hashes,
    outcome_path,
    read_listing,
    read_outcome,
    tsv_cell,
    video_fingerprint,
    write_failure,
)

PLAN_COLUMNS = ("id", "batch")
BATCH_PREFIX = "b"
BATCH_PATTERN = re.compile(r"b\d{5,}\Z")  # the plan's batch ids (bNNNNN), as the workflow's wildcard
ROUND_PATTERN = re.compile(r"(b\d{5,})-([0-9a-f]{12})\Z")  # a batch's round: {batch}-{state}
FAILED_SUFFIX = ".failed.json"  # a member's alignment failure record in a batch's work folder
WORK_MEMBERS = "members.json"  # in a work folder: {id: {video, fingerprint}} of what it aligned, and the models


# ----------------------------------------------------------------------------- batches


def read_plan(path: Path) -> dict[str, str]:
    """{id: batch} of a plan file ({} when there is none). Every line is checked: a plan edited by hand
    into another shape is refused with its line, never skipped or written elsewhere."""
    if not Path(path).exists():
        return {}
    if not Path(path).is_file():
        raise fail(path, "the batch plan is not a regular file")
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise fail(path, f"the batch plan is not UTF-8 text (byte {error.start})") from None
    if not lines or lines[0].split("\t") != list(PLAN_COLUMNS):
        raise fail(path, f"not a batch plan: line 1 must be the header {chr(9).join(PLAN_COLUMNS)!r}")
    plan: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2:
            raise fail(path, f"line {number}: {line[:80]!r} is not 'id<TAB>batch'")
        video, batch = fields
        if not VIDEO_ID_PATTERN.match(video):
            raise fail(path, f"line {number}: {video[:80]!r} is not a video id")
        if not BATCH_PATTERN.match(batch):
            raise fail(path, f"line {number}: batch {batch[:80]!r} is not a batch id (b and 5 or more digits)")
        if video in plan:
            raise fail(path, f"line {number}: video {video!r} is listed twice")
        plan[video] = batch
    return plan


def extend_plan(plan: dict[str, str], videos: Iterable[str], size: int) -> dict[str, str]:
    """The plan with every video of `videos` it lacks put into new batches of `size` (in id order),
    numbered after the plan's last batch. Existing assignments never change."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    new = sorted(v for v in videos if v not in plan)
    numbers = [int(b[len(BATCH_PREFIX) :]) for b in plan.values()]
    first = max(numbers, default=-1) + 1
    extended = dict(plan)
    for k in range(0, len(new), size):
        batch = f"{BATCH_PREFIX}{first + k // size:05d}"
        extended.update({video: batch for video in new[k : k + size]})
    return extended


def write_plan(path: Path, plan: dict[str, str]) -> None:
    from ..io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        fh.write("\t".join(PLAN_COLUMNS) + "\n")
        for video, batch in plan.items():
            fh.write(f"{video}\t{batch}\n")


def batches_to_do(
    videos: dict[str, Path],
    plan: dict[str, str],
    annotations: Path,
    models: list[str],
    retry_failed: bool = False,
    faces: dict[str, str] | None = None,
) -> dict[str, dict[str, dict | None]]:
    """{batch: {pending member: its video's fingerprint}} of the batches that hold a video not yet done
    (with its face rule in `faces`, best where not given; batches and members in id order)."""
    pending: dict[str, dict[str, dict | None]] = {}
    for video in sorted(videos):
        fingerprint = video_fingerprint(videos[video])
        face = face_of(faces, video)
        if not is_done(read_outcome(annotations, video), models, fingerprint, retry_failed, face):
            pending.setdefault(plan[video], {})[video] = fingerprint
    return dict(sorted(pending.items()))


def face_of(faces: dict[str, str] | None, video: str) -> str:
    """A video's face rule (the sheet's `face`; best where there is none)."""
    return (faces or {}).get(video, DEFAULT_FACE_RULE)


def batch_round(
    batch: str,
    pending: dict[str, dict | None],
    models: list[str],
    retry_failed: bool,
    marker_of,
    faces: dict[str, str] | None = None,
) -> str:
    """The batch's round, ``{batch}-{state}``: the state digests what is left to do (pending members, their
    videos' fingerprints and face rules other than best, the models, the retry flag) and, should that round's
    marker exist already (its outcomes were removed since), a counter that gives the first round without one."""
    chosen = {video: face_of(faces, video) for video in pending if face_of(faces, video) != DEFAULT_FACE_RULE}
    base = json.dumps([batch, pending, models, retry_failed, *([chosen] if chosen else [])], sort_keys=True)
    for attempt in range(1000):
        state = hashlib.sha256(f"{base}#{attempt}".encode()).hexdigest()[:12]
        if not Path(marker_of(f"{batch}-{state}")).exists():
            return f"{batch}-{state}"
    raise fail(marker_of(batch), "1000 rounds of this batch have markers: remove the batch markers")


@dataclass
class AnnotationPlan:
    """What `snakemake annotate` does: the videos of the folder or sheet, every video's batch, and the
    rounds of the batches still to do ({batch: its round}). `save()` records new batch assignments (the
    workflow calls it when a run starts, never on a dry run), so every process of the run, each cluster
    job parsing the workflow again included, forms the same batches."""

    videos: dict[str, Path]
    batches: dict[str, str]
    rounds: dict[str, str]
    plan_file: Path
    changed: bool
    faces: dict[str, str]  # {id: face rule} (the sheet's `face`)

    def save(self) -> None:
        if self.changed and read_plan(self.plan_file) != self.batches:
            write_plan(self.plan_file, self.batches)

    def members(self, batch: str) -> list[str]:
        """Every video of the folder in `batch`, done or not (in id order)."""
        return batch_members(self.batches, batch, self.videos)


def batch_members(plan: dict[str, str], batch: str, videos: dict[str, Path]) -> list[str]:
    return sorted(video for video, assigned in plan.items() if assigned == batch and video in videos)


def plan_annotation(
    source: str | Path, model_files: list[Path], batch_size: int, results: str, retry_failed: bool = False
) -> AnnotationPlan:
    from ..contracts import annotation_batch_marker, annotation_plan_path, annotations_dir

    videos, faces = read_listing(source)
    plan_file = Path(annotation_plan_path(results))
    plan = read_plan(plan_file)
    extended = extend_plan(plan, videos, batch_size)
    models = model_hashes(model_files)
    todo = batches_to_do(videos, extended, Path(annotations_dir(results)), models, retry_failed, faces)
    rounds = {
        batch: batch_round(
            batch, pending, models, retry_failed, lambda name: annotation_batch_marker(name, results), faces
        )
        for batch, pending in todo.items()
    }
    return AnnotationPlan(videos, extended, rounds, plan_file, extended != plan, faces)


# ----------------------------------------------------------------------------- the batch jobs


def align_batch(
    videos: dict[str, Path],
    ids: list[str],
    model: Path,
    work: Path,
    annotations: Path,
    models: list[str],
    threads: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
    faces: dict[str, str] | None = None,
) -> dict[str, str]:
    """Align the batch's videos that are not done into `work`/{id}.h5, each with its face rule (`faces`,
    best where not given), or `work`/{id}.failed.json (the reason) where a video cannot be aligned;
    `work`/members.json records each aligned video's fingerprint and face rule, and the models. The folder
    appears only complete. A face file of an earlier round of the same batch (a sibling `{batch}-*`
    folder) made from the same video with the same face rule for the same models is taken over, not
    aligned again; earlier rounds' folders are then removed. Returns {id: "aligned" | "reused" | "failed" | "done"}."""
    from dataclasses import replace

    from ..faces.align import align_to_file
    from ..io import atomic_dir
    from ..modelfile import read_settings

    settings = read_settings(model).settings.faces.align_settings()
    aligners: dict = {}  # one native aligner for the whole batch
    status: dict[str, str] = {}
    aligned: dict[str, dict] = {}
    earlier = earlier_rounds(work)
    with atomic_dir(work) as tmp:
        for video in ids:
            path, face = videos[video], face_of(faces, video)
            fingerprint = video_fingerprint(path)
            if is_done(read_outcome(annotations, video), models, fingerprint, retry_failed, face):
                status[video] = "done"
                continue
            started = time.perf_counter()
            record = {"video": str(path), "fingerprint": fingerprint, "face_rule": face}
            try:
                if fingerprint is None:
                    raise fail(path, "video file not found")
                if _take_over(earlier, video, record, models, tmp):
                    status[video] = "reused"
                else:
                    chosen = replace(settings, face=face)
                    align_to_file(
                        Path(path), tmp / f"{video}.h5", chosen, threads=threads, progress=False, aligners=aligners
                    )
                    status[video] = "aligned"
                aligned[video] = record
            except AffectflowError as error:
                failure = {"id": video, **record, "stage": "align", "error": str(error)}
                (tmp / f"{video}{FAILED_SUFFIX}").write_text(json.dumps(failure) + "\n")
                status[video] = "failed"
            if progress:
                print(f"align {video}: {status[video]} ({time.perf_counter() - started:.1f} s)", flush=True)
        (tmp / WORK_MEMBERS).write_text(json.dumps({"model_sha256": models, "videos": aligned}, indent=1) + "\n")
    for folder in earlier:
        remove_work_folder(folder)
    return status


def earlier_rounds(work: Path) -> list[Path]:
    """The work folders of the same batch's other rounds (affectflow's own: they have members.json)."""
    match = ROUND_PATTERN.match(Path(work).name)
    if match is None or not Path(work).parent.is_dir():
        return []
    return sorted(
        folder
        for folder in Path(work).parent.glob(f"{match.group(1)}-*")
        if folder != Path(work) and ROUND_PATTERN.match(folder.name) and (folder / WORK_MEMBERS).is_file()
    )


def _take_over(earlier: list[Path], video: str, record: dict, models: list[str], into: Path) -> bool:
    """Move the video's face file of an earlier round into `into` when it was aligned from the same video
    (`record`'s fingerprint) with the same face rule for the same models."""
    for folder in earlier:
        try:
            members = json.loads((folder / WORK_MEMBERS).read_text())
            entry = members["videos"].get(video)
        except (OSError, ValueError, KeyError, AttributeError):
            continue
        face_file = folder / f"{video}.h5"
        same = (
            entry
            and entry.get("fingerprint") == record["fingerprint"]
            and entry.get("face_rule", DEFAULT_FACE_RULE) == record["face_rule"]
        )
        if members.get("model_sha256") == models and same:
            if face_file.is_file():
                os.replace(face_file, into / face_file.name)
                return True
    return False


def remove_work_folder(folder: Path) -> None:
    """Remove a batch's work folder that affectflow wrote (io's manifest), never another folder."""
    import shutil

    from ..io import FOLDER_MANIFEST

    if (Path(folder) / FOLDER_MANIFEST).is_file():
        shutil.rmtree(folder, ignore_errors=True)


def annotate_batch(
    videos: dict[str, Path],
    ids: list[str],
    work: Path,
    model_files: list[Path],
    annotations: Path,
    marker: Path,
    device: str = "auto",
    plots: bool = True,
    progress: bool = True,
    retry_failed: bool = False,
    faces: dict[str, str] | None = None,
) -> dict[str, str]:
    """Annotate the batch's aligned videos with the models loaded once; record each failure; write
    the batch's marker (id, status, error) last. A member that is done (same models, same video, same
    face rule) is skipped, whichever process did it; every other member must have a face file or a
    failure record in `work`, else nothing is done (align the batch first). Each outcome records the
    face rule its face file was aligned with."""
    from ..io import atomic_path
    from .table import load_models, write_annotation

    work = Path(work)
    if not work.is_dir():
        raise fail(work, "no such work folder: align the batch first (affectflow align-batch)")
    pipelines = load_models(model_files, device)
    hashes = [p.settings.weights_sha256 for p in pipelines]
    pending = [
        v
        for v in ids
        if not is_done(
            read_outcome(annotations, v), hashes, video_fingerprint(videos[v]), retry_failed, face_of(faces, v)
        )
    ]
    members = _work_members(work)
    unaligned = [v for v in pending if v not in members and not (work / f"{v}{FAILED_SUFFIX}").is_file()]
    if unaligned:
        raise fail(
            work,
            f"has no face file or failure record for {', '.join(unaligned[:5])}"
            f"{' ...' if len(unaligned) > 5 else ''}: align the batch again (affectflow align-batch)",
        )
    rows = []
    for video in ids:
        face_file, failed = work / f"{video}.h5", work / f"{video}{FAILED_SUFFIX}"
        if video not in pending:
            rows.append((video, "done", ""))
        elif video in members and face_file.is_file():
            face = members[video].get("face_rule", DEFAULT_FACE_RULE)  # the rule its face file was aligned with
            try:
                write_annotation(
                    face_file,
                    pipelines,
                    Path(annotations) / f"{video}.csv",
                    outcome_path(annotations, video),
                    Path(annotations) / f"{video}.png" if plots else None,
                    video,
                    progress,
                    extra={
                        "video": members[video]["video"],
                        "face_rule": face,
                        "model_sha256": hashes,
                        "video_fingerprint": members[video]["fingerprint"],
                    },
                )
                rows.append((video, "ok", ""))
            except AffectflowError as error:
                fingerprint = members[video]["fingerprint"]
                write_failure(annotations, video, videos[video], "annotate", str(error), hashes, fingerprint, face)
                rows.append((video, "failed", str(error)))
        else:
            rows.append((video, "failed", _record_failure(annotations, video, failed, hashes)))
        if progress:
            print(f"annotate {video}: {rows[-1][1]}", flush=True)
    with atomic_path(marker) as tmp, open(tmp, "w") as fh:
        fh.write("id\tstatus\terror\n")
        fh.writelines(f"{v}\t{s}\t{tsv_cell(e)}\n" for v, s, e in rows)
    return {v: s for v, s, _ in rows}


def _record_failure(annotations: Path, video: str, failed: Path, hashes: list[str]) -> str:
    """The outcome of a member align-batch could not align (its failure record `failed`); its reason."""
    record = json.loads(failed.read_text())
    face = record.get("face_rule", DEFAULT_FACE_RULE)
    error = record["error"]
    write_failure(annotations, video, record["video"], record["stage"], error, hashes, record["fingerprint"], face)
    return error


def _work_members(work: Path) -> dict[str, dict]:
    """{id: {video, fingerprint}} of the videos the work folder holds face files of."""
    try:
        members = json.loads((work / WORK_MEMBERS).read_text())["videos"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise fail(work / WORK_MEMBERS, f"cannot read the work folder's member list ({error}): align again") from None
    if not isinstance(members, dict):
        raise fail(work / WORK_MEMBERS, "the member list is not a mapping: align again")
    return members
