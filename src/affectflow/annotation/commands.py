"""The commands of an archive: align-batch, annotate-batch and annotate-summary."""

from __future__ import annotations

from pathlib import Path

from ..errors import fail
from ..io import OutputPath
from ..options import add_device, add_quiet, add_threads
from .batches import BATCH_PATTERN, align_batch, annotate_batch, batch_members, read_plan
from .outcomes import list_videos, model_hashes, read_listing, summarize


def add_commands(subparsers) -> None:

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
    add_threads(p)
    p.add_argument("--retry-failed", action="store_true", help="align videos whose earlier attempt failed")
    add_quiet(p)
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
    add_device(p)
    add_quiet(p)
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
    p.add_argument(
        "--videos", required=True, type=Path, help="the folder or sheet of the ids (a sheet's face: who to align)"
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", nargs="+", help="the videos to do")
    which.add_argument("--batch", help="the batch to do: its videos are read from --plan (a command of any batch size)")
    p.add_argument("--plan", type=Path, default=None, help="the batch plan (plan.tsv) that --batch refers to")


def _members(args) -> tuple[dict[str, Path], list[str], dict[str, str]]:
    """The videos of --videos, the ids to do, and the videos' face rules (the sheet's `face`)."""
    from ..io import protect_inputs

    videos, faces = read_listing(args.videos)
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
    return videos, ids, faces


def _align_batch_command(args) -> int:
    videos, ids, faces = _members(args)
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
        faces,
    )
    print(f"{args.output}: {_counts(status, ('aligned', 'reused', 'failed', 'done'))}")
    return 0


def _annotate_batch_command(args) -> int:
    videos, ids, faces = _members(args)
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
        faces,
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
