"""Annotating an archive: thousands of videos in batches (docs/design.md, "Annotating videos").

A video's outcome is its JSON in the annotations folder, ``{id}.json``: status ``ok`` (written
last, after its table and plot: affectflow.annotate.write_annotation) or ``failed`` with the
stage and the reason (no face, cannot be decoded, missing file). Both record the models' SHA-256
and the video's fingerprint (size and modification time, read when it was aligned). A video is
done when its outcome was made by the same models from the same video: a replaced or touched
video, or a change of models, makes it pending again; a plain rerun does not retry a failed one
(``--retry-failed`` does). The state of an archive lives in the outcomes alone.

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

import csv
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .contracts import VIDEO_ID_PATTERN, VIDEO_SUFFIXES, video_id
from .errors import AffectflowError, fail
from .io import OutputPath

PLAN_COLUMNS = ("id", "batch")
BATCH_PREFIX = "b"
BATCH_PATTERN = re.compile(r"b\d{5,}\Z")  # the plan's batch ids (bNNNNN), as the workflow's wildcard
ROUND_PATTERN = re.compile(r"(b\d{5,})-([0-9a-f]{12})\Z")  # a batch's round: {batch}-{state}
FAILED_SUFFIX = ".failed.json"  # a member's alignment failure record in a batch's work folder
WORK_MEMBERS = "members.json"  # in a work folder: {id: {video, fingerprint}} of what it aligned, and the models
SUMMARY_COLUMNS = (
    "id",
    "status",
    "video",
    "frames",
    "duration_s",
    "fps",
    "found_percent",
    "align_s",
    "predict_s",
)
STATUSES = ("ok", "failed", "pending")


def list_videos(source: str | Path) -> dict[str, Path]:
    """{id: video} of a folder (its files with a video suffix, not recursive; id = the file's stem) or
    of a sheet (.tsv/.csv with a `video` column, paths relative to the sheet, and an optional `id`).

    Files are not opened (a missing one fails its own video later). Light on purpose: the workflow
    calls it when it parses.
    """
    source = Path(source)
    entries: list[tuple[str | None, Path]] = []
    if source.is_dir():
        entries = [
            (None, p)
            for p in sorted(source.iterdir())
            if not p.name.startswith(".") and p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
        ]
        if not entries:
            raise fail(source, f"no videos ({', '.join(VIDEO_SUFFIXES)}) in this folder")
    elif source.is_file():
        with open(source, newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if source.suffix.lower() == ".tsv" else ",")
            if "video" not in (reader.fieldnames or []):
                raise fail(source, f"a video sheet needs a 'video' column (has {reader.fieldnames})")
            for row in reader:
                if not (row.get("video") or "").strip():
                    continue
                path = Path(row["video"].strip())
                entries.append(
                    ((row.get("id") or "").strip() or None, path if path.is_absolute() else source.parent / path)
                )
        if not entries:
            raise fail(source, "the video sheet lists no video")
    else:
        raise fail(source, "no such folder or video sheet")
    videos: dict[str, Path] = {}
    for given, path in entries:
        name = given or video_id(str(path))
        if not VIDEO_ID_PATTERN.match(name):
            raise fail(source, f"video id {name!r} ({path}): use letters, digits, '.', '_' and '-'")
        if name in videos:
            raise fail(source, f"two videos have the id {name!r}: {videos[name]} and {path}")
        videos[name] = path
    return videos


# ----------------------------------------------------------------------------- outcomes


def outcome_path(annotations: Path, video: str) -> Path:
    return Path(annotations) / f"{video}.json"


def read_outcome(annotations: Path, video: str) -> dict | None:
    """A video's outcome, or None when it has none (or an unreadable one: it is redone)."""
    try:
        outcome = json.loads(outcome_path(annotations, video).read_text())
    except (OSError, ValueError):
        return None
    return outcome if isinstance(outcome, dict) and outcome.get("status") in ("ok", "failed") else None


def video_fingerprint(path: Path | str) -> dict | None:
    """What identifies a video file's contents without reading it: its size and modification time
    (ns); None when it is not a file. A replaced, rewritten or touched video gets another one."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if not Path(path).is_file():
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_failure(
    annotations: Path, video: str, source: Path | str, stage: str, error: str, models: list[str], fingerprint
) -> dict:
    from .io import atomic_path

    outcome = {
        "id": video,
        "status": "failed",
        "video": str(source),
        "stage": stage,
        "error": error,
        "model_sha256": models,
        "video_fingerprint": fingerprint,
    }
    with atomic_path(outcome_path(annotations, video)) as tmp:
        tmp.write_text(json.dumps(outcome, indent=2, sort_keys=True) + "\n")
    return outcome


def is_done(outcome: dict | None, models: list[str], fingerprint: dict | None, retry_failed: bool = False) -> bool:
    """Done: annotated by these models (their weights' SHA-256) from this video (its fingerprint now), or
    failed on it with these models (unless retried). An outcome without a fingerprint is not done."""
    if outcome is None or outcome.get("video_fingerprint") != fingerprint or outcome.get("model_sha256") != models:
        return False
    return outcome["status"] == "ok" or not retry_failed


def model_hashes(model_files: Iterable[Path]) -> list[str]:
    """The models' weights' SHA-256, read from their headers (no torch)."""
    from .modelfile import read_settings

    return [read_settings(path).settings.weights_sha256 for path in model_files]


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
    from .io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        fh.write("\t".join(PLAN_COLUMNS) + "\n")
        for video, batch in plan.items():
            fh.write(f"{video}\t{batch}\n")


def batches_to_do(
    videos: dict[str, Path], plan: dict[str, str], annotations: Path, models: list[str], retry_failed: bool = False
) -> dict[str, dict[str, dict | None]]:
    """{batch: {pending member: its video's fingerprint}} of the batches that hold a video not yet done
    (batches and members in id order)."""
    pending: dict[str, dict[str, dict | None]] = {}
    for video in sorted(videos):
        fingerprint = video_fingerprint(videos[video])
        if not is_done(read_outcome(annotations, video), models, fingerprint, retry_failed):
            pending.setdefault(plan[video], {})[video] = fingerprint
    return dict(sorted(pending.items()))


def batch_round(batch: str, pending: dict[str, dict | None], models: list[str], retry_failed: bool, marker_of) -> str:
    """The batch's round, ``{batch}-{state}``: the state digests what is left to do (pending members, their
    videos' fingerprints, the models, the retry flag) and, should that round's marker exist already (its
    outcomes were removed since), a counter that gives the first round without one."""
    base = json.dumps([batch, pending, models, retry_failed], sort_keys=True)
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
    from .contracts import annotation_batch_marker, annotation_plan_path, annotations_dir

    videos = list_videos(source)
    plan_file = Path(annotation_plan_path(results))
    plan = read_plan(plan_file)
    extended = extend_plan(plan, videos, batch_size)
    models = model_hashes(model_files)
    todo = batches_to_do(videos, extended, Path(annotations_dir(results)), models, retry_failed)
    rounds = {
        batch: batch_round(batch, pending, models, retry_failed, lambda name: annotation_batch_marker(name, results))
        for batch, pending in todo.items()
    }
    return AnnotationPlan(videos, extended, rounds, plan_file, extended != plan)


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
) -> dict[str, str]:
    """Align the batch's videos that are not done into `work`/{id}.h5, or `work`/{id}.failed.json
    (the reason) where a video cannot be aligned; `work`/members.json records each aligned video's
    fingerprint and the models. The folder appears only complete. A face file of an earlier round of
    the same batch (a sibling `{batch}-*` folder) made from the same video for the same models is taken
    over, not aligned again; earlier rounds' folders are then removed. Returns
    {id: "aligned" | "reused" | "failed" | "done"}."""
    from .align import align_to_file
    from .io import atomic_dir
    from .modelfile import read_settings

    options = read_settings(model).settings.faces.align_options()
    aligners: dict = {}  # one native aligner for the whole batch
    status: dict[str, str] = {}
    aligned: dict[str, dict] = {}
    earlier = earlier_rounds(work)
    with atomic_dir(work) as tmp:
        for video in ids:
            path = videos[video]
            fingerprint = video_fingerprint(path)
            if is_done(read_outcome(annotations, video), models, fingerprint, retry_failed):
                status[video] = "done"
                continue
            started = time.perf_counter()
            record = {"video": str(path), "fingerprint": fingerprint}
            try:
                if fingerprint is None:
                    raise fail(path, "video file not found")
                if _take_over(earlier, video, fingerprint, models, tmp):
                    status[video] = "reused"
                else:
                    align_to_file(
                        Path(path),
                        tmp / f"{video}.h5",
                        threads=threads,
                        progress=False,
                        aligners=aligners,
                        **_align(options),
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


def _take_over(earlier: list[Path], video: str, fingerprint: dict, models: list[str], into: Path) -> bool:
    for folder in earlier:
        try:
            members = json.loads((folder / WORK_MEMBERS).read_text())
            entry = members["videos"].get(video)
        except (OSError, ValueError, KeyError, AttributeError):
            continue
        faces = folder / f"{video}.h5"
        if members.get("model_sha256") == models and entry and entry.get("fingerprint") == fingerprint:
            if faces.is_file():
                os.replace(faces, into / faces.name)
                return True
    return False


def remove_work_folder(folder: Path) -> None:
    """Remove a batch's work folder that affectflow wrote (io's manifest), never another folder."""
    import shutil

    from .io import FOLDER_MANIFEST

    if (Path(folder) / FOLDER_MANIFEST).is_file():
        shutil.rmtree(folder, ignore_errors=True)


def _align(options: dict) -> dict:
    from .contracts import DEFAULT_NORMALIZATION

    return {"normalization": DEFAULT_NORMALIZATION, **options}


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
) -> dict[str, str]:
    """Annotate the batch's aligned videos with the models loaded once; record each failure; write
    the batch's marker (id, status, error) last. A member that is done (same models, same video) is
    skipped, whichever process did it; every other member must have a face file or a failure record
    in `work`, else nothing is done (align the batch first)."""
    from .annotate import load_models, write_annotation
    from .io import atomic_path

    work = Path(work)
    if not work.is_dir():
        raise fail(work, "no such work folder: align the batch first (affectflow align-batch)")
    pipelines = load_models(model_files, device)
    hashes = [p.settings.weights_sha256 for p in pipelines]
    pending = [
        v for v in ids if not is_done(read_outcome(annotations, v), hashes, video_fingerprint(videos[v]), retry_failed)
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
        faces, failed = work / f"{video}.h5", work / f"{video}{FAILED_SUFFIX}"
        if video not in pending:
            rows.append((video, "done", ""))
        elif video in members and faces.is_file():
            try:
                write_annotation(
                    faces,
                    pipelines,
                    Path(annotations) / f"{video}.csv",
                    outcome_path(annotations, video),
                    Path(annotations) / f"{video}.png" if plots else None,
                    video,
                    progress,
                    extra={
                        "video": members[video]["video"],
                        "model_sha256": hashes,
                        "video_fingerprint": members[video]["fingerprint"],
                    },
                )
                rows.append((video, "ok", ""))
            except AffectflowError as error:
                fingerprint = members[video]["fingerprint"]
                write_failure(annotations, video, videos[video], "annotate", str(error), hashes, fingerprint)
                rows.append((video, "failed", str(error)))
        else:
            record = json.loads(failed.read_text())
            write_failure(
                annotations, video, record["video"], record["stage"], record["error"], hashes, record["fingerprint"]
            )
            rows.append((video, "failed", record["error"]))
        if progress:
            print(f"annotate {video}: {rows[-1][1]}", flush=True)
    with atomic_path(marker) as tmp, open(tmp, "w") as fh:
        fh.write("id\tstatus\terror\n")
        fh.writelines(f"{v}\t{s}\t{_cell(e)}\n" for v, s, e in rows)
    return {v: s for v, s, _ in rows}


def _work_members(work: Path) -> dict[str, dict]:
    """{id: {video, fingerprint}} of the videos the work folder holds face files of."""
    try:
        members = json.loads((work / WORK_MEMBERS).read_text())["videos"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise fail(work / WORK_MEMBERS, f"cannot read the work folder's member list ({error}): align again") from None
    if not isinstance(members, dict):
        raise fail(work / WORK_MEMBERS, "the member list is not a mapping: align again")
    return members


# ----------------------------------------------------------------------------- the summary


def summarize(
    videos: dict[str, Path], annotations: Path, output: Path | None = None
) -> tuple[dict[str, int], list[dict]]:
    """One row per video, in the listing's order: its outcome, or pending. Reads only the outcomes,
    so it can run at any time, also while a run goes on. Returns (the counts per status, the rows)."""
    from .io import atomic_path

    rows, dimensions = [], []
    for video, path in videos.items():
        outcome = read_outcome(annotations, video) or {"id": video, "status": "pending", "video": str(path)}
        dimensions += [d for d in outcome.get("dimensions", []) if d not in dimensions]
        rows.append(outcome)
    counts = {status: sum(r["status"] == status for r in rows) for status in STATUSES}
    if output is not None:
        columns = [*SUMMARY_COLUMNS, *(f"{d}_{s}" for d in dimensions for s in ("mean", "sd")), "stage", "error"]
        with atomic_path(output) as tmp, open(tmp, "w") as fh:
            fh.write("\t".join(columns) + "\n")
            for row in rows:
                fh.write("\t".join(_cell(row.get(c, "")) for c in columns) + "\n")
    return counts, rows


def _cell(value) -> str:
    return str(value).replace("\t", " ").replace("\n", " ")


# ----------------------------------------------------------------------------- commands


def add_commands(subparsers) -> None:
    from .contracts import DEVICES

    p = subparsers.add_parser(
        "align-batch",
        help="align a batch of videos of a folder or sheet (the workflow's `annotate` target)",
        description="Align the given videos (those not yet annotated) into WORK/{id}.h5 as the model's "
        "training faces were aligned; a video that cannot be aligned gets WORK/{id}.failed.json.",
    )
    _members_arguments(p)
    p.add_argument("--like", required=True, type=Path, metavar="MODEL", help="align as this model's faces")
    p.add_argument("--model", required=True, type=Path, action="append", help="the annotating models (done check)")
    p.add_argument("--annotations", required=True, type=Path, help="the folder of outcomes ({id}.json)")
    p.add_argument("-o", "--output", required=True, type=OutputPath, help="WORK folder")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--retry-failed", action="store_true", help="align videos whose earlier attempt failed")
    p.add_argument("--quiet", action="store_true", help="no progress")
    p.set_defaults(handler=_align_batch_command)

    p = subparsers.add_parser(
        "annotate-batch",
        help="annotate a batch of aligned videos with models loaded once",
        description="For each id: ANNOTATIONS/{id}.csv, .png and .json (status ok), or {id}.json with "
        "status failed and the reason; then the batch's marker.",
    )
    _members_arguments(p)
    p.add_argument("--work", required=True, type=Path, help="the batch's align-batch folder")
    p.add_argument("--model", required=True, type=Path, action="append", help="model file, one per dimension")
    p.add_argument("--annotations", required=True, type=OutputPath, help="the folder of tables and outcomes")
    p.add_argument("--marker", required=True, type=OutputPath, help="BATCH.tsv, written last")
    p.add_argument("--no-plots", action="store_true", help="no PNG per video")
    p.add_argument("--retry-failed", action="store_true", help="annotate videos whose earlier attempt failed")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--quiet", action="store_true", help="no progress")
    p.set_defaults(handler=_annotate_batch_command)

    p = subparsers.add_parser(
        "annotate-summary",
        help="the state of an annotated folder: ok / failed (with the reason) / pending, per video",
        description="Print the counts of a folder's (or sheet's) videos by status, read from the outcomes; "
        "with -o, write one row per video. Runs at any time, also while the workflow goes on.",
    )
    p.add_argument("--videos", required=True, type=Path, help="the folder or sheet")
    p.add_argument("--annotations", required=True, type=Path, help="the folder of outcomes ({id}.json)")
    p.add_argument("-o", "--output", type=OutputPath, default=None, help="summary.tsv")
    p.set_defaults(handler=_summary_command)


def _members_arguments(p) -> None:
    p.add_argument("--videos", required=True, type=Path, help="the folder or sheet the ids come from")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", nargs="+", help="the videos to do")
    which.add_argument("--batch", help="the batch to do: its videos are read from --plan (a command of any batch size)")
    p.add_argument("--plan", type=Path, default=None, help="the batch plan (plan.tsv) that --batch refers to")


def _members(args) -> tuple[dict[str, Path], list[str]]:
    from .io import protect_inputs

    videos = list_videos(args.videos)
    protect_inputs(videos.values())
    if args.batch is not None and not BATCH_PATTERN.match(args.batch):
        raise fail(args.batch, "is not a batch id (b and 5 or more digits, as in the plan)")
    if args.batch is None:
        ids = args.ids
    elif args.plan is None or not args.plan.is_file():
        raise fail(args.plan or "--plan", f"batch {args.batch} needs its plan file (the workflow writes it at start)")
    else:
        ids = batch_members(read_plan(args.plan), args.batch, videos)
        if not ids:
            raise fail(args.plan, f"no video of {args.videos} is in batch {args.batch}")
    _known(args.videos, videos, ids)
    return videos, ids


def _align_batch_command(args) -> int:
    videos, ids = _members(args)
    status = align_batch(
        videos,
        ids,
        args.like,
        args.output,
        args.annotations,
        model_hashes(args.model),
        args.threads,
        args.retry_failed,
        not args.quiet,
    )
    print(f"{args.output}: {_counts(status, ('aligned', 'reused', 'failed', 'done'))}")
    return 0


def _annotate_batch_command(args) -> int:
    videos, ids = _members(args)
    status = annotate_batch(
        videos,
        ids,
        args.work,
        args.model,
        args.annotations,
        args.marker,
        args.device,
        not args.no_plots,
        not args.quiet,
        args.retry_failed,
    )
    print(f"{args.marker}: {_counts(status, ('ok', 'failed', 'done'))}")
    return 0


def _counts(status: dict[str, str], kinds: tuple[str, ...]) -> str:
    return ", ".join(f"{sum(s == kind for s in status.values())} {kind}" for kind in kinds)


def _known(source: Path, videos: dict, ids: list[str]) -> None:
    unknown = [v for v in ids if v not in videos]
    if unknown:
        raise fail(source, f"lists no video with the id(s) {', '.join(unknown[:5])}")


def _summary_command(args) -> int:
    videos = list_videos(args.videos)
    counts, rows = summarize(videos, args.annotations, args.output)
    failed = [(video, row) for video, row in zip(videos, rows) if row["status"] == "failed"]
    where = f"{args.output}: " if args.output else f"{args.videos}: "
    print(
        where
        + f"{len(videos)} videos: {counts['ok']} annotated, {counts['failed']} failed, {counts['pending']} pending"
        + "".join(f"\n  {v}: {o.get('error', '')}" for v, o in failed[:50])
        + (f"\n  ... and {len(failed) - 50} more failures (see the summary table)" if len(failed) > 50 else "")
    )
    return 0
