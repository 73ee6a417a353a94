# Parse-time checks and the rules' input functions; the package computes what they rest on.
# From the config: the models the tables need and the RNN grid (affectflow.reporting.layout); from
# the corpus: its subjects (affectflow.data.corpus reads one, affectflow.synth plans the synthetic one).
# Names every part of affectflow agrees on (dimensions, partitions, the results layout, run
# and model names, row keys) come from affectflow.contracts; rules build paths with its helpers.

import os
import re
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from affectflow.reporting import layout as tables_layout
from affectflow.workflow.config_check import schema_problems
from affectflow.contracts import (
    FIGURE3,
    FIGURE3_SMOOTHNESS,
    HISTORY_FILE,
    MODEL_FILE,
    MODEL_KINDS,
    RESULTS,
    RUN_FILE,
    RUN_PATTERN,
    TABLE_FORMATS,
    TRAINING_CURVES,
    annotation_batch_marker,
    annotation_plan_path,
    annotation_work_dir,
    annotations_dir,
    annotation_path,
    annotations_summary_path,
    cnn_dir,
    cnn_label,
    faces_path,
    features_path,
    figure_path,
    metrics_path,
    model_dir,
    predictions_dir,
    predictions_path,
    rnn_dir,
    rnn_flags,
    rnn_name,
    run_dimension,
    run_seed,
    run_selection,
    table_path,
)

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")


# ---- config validation: every value a command would refuse is refused here, at parse time,
# with the config key named. First the schema (types, ranges, the package's enumerations;
# affectflow.workflow.config_check lists every violation), then what a schema cannot say (how keys
# relate), then what needs the corpus's subjects.
def _refuse(problems):
    """Stop parsing with every problem found, one line each."""
    if problems:
        raise WorkflowError(
            "invalid config (keys: workflow/schemas/config.schema.yaml):\n  "
            + "\n  ".join(problems)
        )


_refuse(schema_problems(config, SCHEMA))
validate(config, schema=SCHEMA)  # sets the schema's defaults

CORPUS = config["corpus"]["path"]
SYNTHETIC = config["corpus"].get("synthetic")
# Table 1's rows run every seed, the sweeps of Tables 2-4 `sweep_seeds`; the first model
# selection picks every table's models, each further one retrains Table 1's (first seed).
SEEDS = tables_layout.seeds(config)
SWEEP_SEEDS = tables_layout.sweep_seeds(config)
MODEL_SELECTIONS = tables_layout.model_selections(config)
HEADLINE_SELECTION = MODEL_SELECTIONS[0]
# Every model is trained and scored for each dimension; a run of any but the first names its
# dimension (seed0-arousal): the rules read it from the run (affectflow.contracts.run_dimension).
DIMENSIONS = tables_layout.dimensions(config)
FIRST_DIMENSION = DIMENSIONS[0]
TABLES = tables_layout.table_names(config)
# The config's CNN variants (a subset of affectflow.contracts.CNN_VARIANTS).
VARIANTS = list(config["cnn"]["variants"])
RNN_FEATURES = config["rnn"]["features"]
RNN_FEATURE_NORM = config["rnn"].get("feature_norm", "causal")
EVAL_PARTITION = config["evaluate"]["partition"]


def _relation_problems():
    """What the schema cannot say: how config keys relate to each other."""
    problems = []
    epochs = config["cnn"]["epochs"]
    if isinstance(epochs, dict):
        missing = [v for v in VARIANTS if v not in epochs]
        if missing:
            problems.append(
                f"config cnn.epochs: no epoch count for variant(s) {missing} of cnn.variants"
            )
    if RNN_FEATURES not in VARIANTS:
        problems.append(
            f"config rnn.features: CNN variant {RNN_FEATURES!r} is not in cnn.variants {VARIANTS}"
        )
    extra = sorted(set(SWEEP_SEEDS) - set(SEEDS))
    if extra:
        problems.append(
            f"config sweep_seeds: seed(s) {extra} are not among seeds {SEEDS} "
            "(the sweeps run a subset of Table 1's seeds)"
        )
    if EVAL_PARTITION not in config["partitions"]:
        problems.append(
            f"config evaluate.partition: {EVAL_PARTITION!r} is not in partitions {config['partitions']}"
        )
    figure_cnn = config["figures"].get("cnn")
    if figure_cnn is not None and figure_cnn not in VARIANTS:
        problems.append(
            f"config figures.cnn: CNN variant {figure_cnn!r} is not in cnn.variants {VARIANTS}"
        )
    return problems


_refuse(_relation_problems())


def _recordings():
    """Subjects of the corpus: the synthetic one as synth_corpus will write it (it does not
    exist yet at parse time), or an existing one, read by affectflow's own corpus reader.
    """
    if SYNTHETIC:
        from affectflow.synth import planned_recordings

        recordings = planned_recordings(CORPUS, SYNTHETIC["subjects"])
    else:
        from affectflow.data.corpus import open_corpus
        from affectflow.errors import AffectflowError

        try:
            recordings = open_corpus(
                CORPUS, config["corpus"].get("test_list")
            ).recordings
        except (AffectflowError, OSError) as error:
            raise WorkflowError(f"config corpus.path: cannot open the corpus: {error}")
    return {
        rec.subject: {
            "partition": rec.partition,
            "video": str(rec.video),
            "labels": {dim: str(path) for dim, path in rec.labels.items()},
            # which person to align (Aff-Wild2's NAME_left / NAME_right share the video NAME)
            "face": rec.face,
        }
        for rec in recordings
    }


RECORDINGS = _recordings()
# Subjects the workflow aligns and featurizes (config `partitions`), in corpus order.
SUBJECTS = [
    s for s, rec in RECORDINGS.items() if rec["partition"] in config["partitions"]
]


FACE_SOURCE = config["align"].get("source", "detect")
if FACE_SOURCE == "release" and SYNTHETIC:
    raise WorkflowError(
        "config align.source: release needs an Aff-Wild2 corpus (its cropped_aligned/ crops)"
    )


def subject_crops(wildcards):
    """A subject's folder of release crops (affectflow.faces.release.crops_folder), refused by name if absent."""
    from affectflow.errors import AffectflowError
    from affectflow.faces.release import crops_folder

    try:
        return str(crops_folder(CORPUS, wildcards.subject, subject_video(wildcards)))
    except AffectflowError as error:
        raise WorkflowError(f"config align.source: release: {error}") from None


def subject_video(wildcards):
    """A subject's video; a target naming no subject of the corpus is refused by name."""
    if wildcards.subject not in RECORDINGS:
        raise WorkflowError(
            f"{wildcards.subject!r} is not a subject of the corpus {CORPUS!r} (see `affectflow corpus list`)"
        )
    return RECORDINGS[wildcards.subject]["video"]


def subjects(partition):
    return [s for s in SUBJECTS if RECORDINGS[s]["partition"] == partition]


_refuse(
    [
        f"config {'corpus.synthetic.subjects' if SYNTHETIC else 'corpus.path'}: no "
        f"{needed!r} subjects to use (corpus {CORPUS!r}, partitions {config['partitions']})"
        for needed in dict.fromkeys(("train", "dev", EVAL_PARTITION))
        if not subjects(needed)
    ]
)

# Subjects whose labels and faces training needs: train fits, dev selects the model.
TRAINING_SUBJECTS = subjects("train") + subjects("dev")


def cnn_epochs(variant):
    """cnn.epochs: one count for every variant, or a count per variant."""
    epochs = config["cnn"]["epochs"]
    return epochs[variant] if isinstance(epochs, dict) else epochs


def cli_options(options):
    """Turn a config mapping {frame_stride: 2, amp: true} into `--frame-stride 2 --amp`."""
    words = []
    for key, value in (options or {}).items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            words.append(flag)
        elif value is not False and value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


# ---- the RNN configs of the ablation grid (Tables 1-4, by name) and every model run the
# tables need, (kind, model, run): affectflow.reporting.layout, which also lays out the tables.
RNN_CONFIGS = tables_layout.rnn_grid(config)[1]
MODEL_RUNS = tables_layout.model_runs(config)


# A subject is any file name: an alternation of every subject would be copied into every file
# pattern and rescanned per job (quadratic DAG time at hundreds of subjects); the input functions
# refuse a name that is not one (subject_video).
wildcard_constraints:
    subject=r"[^/]+",
    variant="|".join(re.escape(v) for v in VARIANTS),
    name="|".join(re.escape(n) for n in RNN_CONFIGS),
    run=RUN_PATTERN,


def run_dimension_of(wildcards):
    """The dimension a run trains and scores (its name's, else the config's first)."""
    return run_dimension(wildcards.run, FIRST_DIMENSION)


def label_files(subject_list):
    """An input function: the subjects' label files of the run's dimension."""

    def files(wildcards):
        dim = run_dimension_of(wildcards)
        return [
            RECORDINGS[s]["labels"][dim]
            for s in subject_list
            if dim in RECORDINGS[s]["labels"]
        ]

    return files


def table_files():
    return [table_path(n, fmt) for n in TABLES for fmt in TABLE_FORMATS]


def figure_files():
    return [figure_path(FIGURE3), figure_path(TRAINING_CURVES)]


def all_metrics_files():
    return [metrics_path(kind, model, run) for kind, model, run in MODEL_RUNS]


def all_histories():
    return [
        f"{model_dir(kind, model, run)}/{HISTORY_FILE}"
        for kind, model, run in MODEL_RUNS
    ]


def model_file(kind, model, run):
    """A run's model file; kind is "cnn" or "rnn" (not a wildcard: the folders differ)."""
    return f"{model_dir(kind, model, run)}/{MODEL_FILE}"


def evaluation_features(wildcards):
    """A model's inputs on the evaluation subjects: a CNN's own features, or for an RNN those
    of the CNN whose features it was trained on (rnn.features)."""
    variant = wildcards.model if wildcards.kind == "cnn" else RNN_FEATURES
    return [features_path(variant, wildcards.run, s) for s in subjects(EVAL_PARTITION)]


# ---- Figure 3: one evaluation subject, the CNN and the base RNN of the first seed.
FIGURE_SUBJECT = config["figures"].get("subject") or subjects(EVAL_PARTITION)[0]
FIGURE_CNN = config["figures"].get("cnn") or RNN_FEATURES
FIGURE_RNN = rnn_name(config["rnn"]["base"])
FIGURE_RUN = tables_layout.runs(config, SEEDS[:1])[0]
_refuse(
    (
        [
            f"config figures.subject: {FIGURE_SUBJECT!r} is not a {EVAL_PARTITION} subject "
            f"(evaluate.partition) of the corpus: {subjects(EVAL_PARTITION)}"
        ]
        if FIGURE_SUBJECT not in subjects(EVAL_PARTITION)
        else []
    )
    + (
        [
            f"config rnn.base: Figure 3 draws the base RNN {FIGURE_RNN} ({FIGURE_RUN}), "
            f"but no table of rnn.tables trains it with seed {SEEDS[0]}: include the base "
            "settings in a sweep (e.g. table1: {nonlinearity: [tanh, relu]}) run with that seed"
        ]
        if ("rnn", FIGURE_RNN, FIGURE_RUN) not in MODEL_RUNS
        else []
    )
)


# ---- annotate: a per-frame table for every video of a folder (`snakemake annotate`), in batches
# (affectflow.annotation.batches): one alignment job and one annotation job per batch of annotate.batch videos.
ANNOTATE = config.get("annotate") or {}


def annotate_models(wildcards=None):
    """annotate.models, else the workflow's own base RNN (first seed), one per dimension, once trained."""
    if ANNOTATE.get("models"):
        return list(ANNOTATE["models"])
    own = [
        model_file(
            "rnn", FIGURE_RNN, tables_layout.runs(config, SEEDS[:1], dimension=d)[0]
        )
        for d in DIMENSIONS
    ]
    if all(os.path.exists(path) for path in own):
        return own
    raise WorkflowError(
        f"config annotate.models: none given, and the workflow's own model {' '.join(own)} is not trained yet "
        "(run the workflow first, or name model files: --config 'annotate={videos: DIR, models: [M.safetensors]}')"
    )


def _annotate_plan():
    """The videos, their batches and the batches still to do (affectflow.annotation.batches.AnnotationPlan)."""
    if not ANNOTATE.get("videos"):
        return None
    from affectflow.annotation.batches import plan_annotation
    from affectflow.errors import AffectflowError

    try:
        return plan_annotation(
            ANNOTATE["videos"],
            annotate_models(),
            int(ANNOTATE.get("batch", 100)),
            RESULTS,
            retry_failed=ANNOTATE_RETRY_FAILED,
        )
    except (AffectflowError, OSError) as error:
        raise WorkflowError(f"config annotate: {error}") from None


# Failed videos are not retried by a plain rerun (their failure is data); this config key retries them.
def config_flag(section: dict, key: str) -> bool:
    """A true/false config key, as YAML (true) or as --config text ('true') gives it."""
    return str(section.get(key, False)).lower() == "true"


ANNOTATE_RETRY_FAILED = config_flag(ANNOTATE, "retry_failed")
ANNOTATE_PLAN = _annotate_plan()
ANNOTATE_VIDEOS = ANNOTATE_PLAN.videos if ANNOTATE_PLAN else {}
ANNOTATE_ROUNDS = ANNOTATE_PLAN.rounds if ANNOTATE_PLAN else {}
ANNOTATE_RETRY = "--retry-failed" if ANNOTATE_RETRY_FAILED else ""


def annotate_targets(wildcards=None):
    if not ANNOTATE_VIDEOS:
        raise WorkflowError(
            "config annotate.videos: not set; e.g. snakemake annotate --cores 4 "
            "--config 'annotate={videos: my_videos/, models: [results/rnn/.../model.safetensors]}'"
        )
    return [annotations_summary_path()]


def annotate_batch_videos(wildcards):
    """The batch's videos that exist (a missing one is recorded as a failure by align-batch). From the
    plan, not the batches to do: a cluster job parses again after its own members may be done.
    """
    return [
        str(ANNOTATE_VIDEOS[v])
        for v in ANNOTATE_PLAN.members(wildcards.batch)
        if os.path.exists(ANNOTATE_VIDEOS[v])
    ]


def annotate_summary_command(output=None):
    """The folder's summary table (or, without `output`, its counts printed: what `onerror` does, since a
    table written after a failure would stand for work not done); the command does not grow with the folder.
    """
    return shlex.join(
        ["affectflow", "annotate-summary", "--videos", str(ANNOTATE["videos"])]
        + ["--annotations", annotations_dir()]
        + (["-o", output] if output else [])
    )
