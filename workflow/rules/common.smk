# Parse-time helpers: config validation, the subject list, the model grids.
# Everything the rules fan out over is computed here from the config and the corpus.
# Names every part of affectflow agrees on (dimensions, partitions, the results layout, run
# and model names, row keys) come from affectflow.contracts; rules build paths with its helpers.

import itertools
import json
import os
import re
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from affectflow.contracts import (
    DIMENSIONS,
    FIGURE3,
    FIGURE3_SMOOTHNESS,
    HISTORY_FILE,
    MODEL_FILE,
    MODEL_KINDS,
    PARTITIONS,
    RUN_FILE,
    RUN_PATTERN,
    SWEEP_TABLES,
    TABLES,
    TABLE_FORMATS,
    TRAINING_CURVES,
    annotation_faces_path,
    annotation_path,
    annotations_summary_path,
    avec_labels,
    avec_video,
    cnn_dir,
    cnn_label,
    cnn_row_key,
    faces_path,
    features_path,
    figure_path,
    metrics_path,
    model_dir,
    predictions_dir,
    predictions_path,
    rnn_dir,
    rnn_name,
    rnn_row_key,
    run_id,
    run_seed,
    run_selection,
    table_path,
)

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")


# ---- config validation: every value a command would refuse is refused here, at parse time,
# with the config key named. First the schema (types, ranges, the package's enumerations),
# then what a schema cannot say (how keys relate), then what needs the corpus's subjects.
def _config_key(path):
    """A config key as dotted text: rnn.tables.table4.layers[1]."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "(the config)"


def _schema_problems():
    """Every schema violation of the config, one line each, keys named. Stricter than
    snakemake.utils.validate on one point: an integer must be written as one (8, not 8.0).
    """
    import jsonschema
    import yaml

    with open(SCHEMA) as f:
        schema = yaml.safe_load(f)
    base = jsonschema.Draft202012Validator
    strict = jsonschema.validators.extend(
        base,
        type_checker=base.TYPE_CHECKER.redefine(
            "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)
        ),
    )
    problems = []
    for error in strict(schema).iter_errors(config):
        message = error.message
        # oneOf / anyOf: what the alternatives for the value's type wanted
        if error.context:
            subs = [e for e in error.context if e.validator != "type"] or error.context
            reasons = []
            for sub in subs:
                where = _config_key(sub.absolute_path)
                reason = sub.message + (
                    f" ({where})" if sub.absolute_path != error.absolute_path else ""
                )
                if reason not in reasons:
                    reasons.append(reason)
            message += ": " + "; or ".join(reasons)
        problems.append(f"config {_config_key(error.absolute_path)}: {message}")
    return sorted(problems)


def _refuse(problems):
    """Stop parsing with every problem found, one line each."""
    if problems:
        raise WorkflowError(
            "invalid config (keys: workflow/schemas/config.schema.yaml):\n  "
            + "\n  ".join(problems)
        )


_refuse(_schema_problems())
validate(config, schema=SCHEMA)  # sets the schema's defaults

CORPUS = config["corpus"]["path"]
SYNTHETIC = config["corpus"].get("synthetic")


def _seed_list(value):
    return list(range(value)) if isinstance(value, int) else list(value)


# Table 1's rows (CNN variants, CNN+RNN nonlinearities) run every seed; the sweeps of
# Tables 2-4 run `sweep_seeds` (default: all seeds), so a small budget can say so.
SEEDS = _seed_list(config["seeds"])
SWEEP_SEEDS = _seed_list(config.get("sweep_seeds", config["seeds"]))
# Model selection: the first entry picks the models of every table (the paper: dev); each
# further entry retrains, first seed only, the feature CNN (rnn.features) and Table 1's
# CNN+RNN rows selected that way, shown beside them.
MODEL_SELECTIONS = (
    [config["selection"]]
    if isinstance(config["selection"], str)
    else list(config["selection"])
)
HEADLINE_SELECTION = MODEL_SELECTIONS[0]
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


def _synthetic_recordings():
    """Subjects of the corpus that synth_corpus will write (it does not exist yet at parse time)."""
    recordings = {}
    for partition, count in zip(PARTITIONS, SYNTHETIC["subjects"]):
        for index in range(1, count + 1):
            subject = f"{partition}_{index}"
            recordings[subject] = {
                "partition": partition,
                "video": f"{CORPUS}/{avec_video(subject)}",
                "labels": {
                    dim: f"{CORPUS}/{avec_labels(dim, subject)}" for dim in DIMENSIONS
                },
            }
    return recordings


def _corpus_recordings():
    """Subjects of an existing corpus, read by affectflow's own corpus reader."""
    from affectflow.corpus import open_corpus
    from affectflow.errors import AffectflowError

    try:
        corpus = open_corpus(CORPUS)
    except (AffectflowError, OSError) as error:
        raise WorkflowError(f"config corpus.path: cannot open the corpus: {error}")
    return {
        rec.subject: {
            "partition": rec.partition,
            "video": str(rec.video),
            "labels": {dim: str(path) for dim, path in rec.labels.items()},
        }
        for rec in corpus.recordings
    }


RECORDINGS = _synthetic_recordings() if SYNTHETIC else _corpus_recordings()
# Subjects the workflow aligns and featurizes (config `partitions`), in corpus order.
SUBJECTS = [
    s for s, rec in RECORDINGS.items() if rec["partition"] in config["partitions"]
]


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


# ---- the RNN ablation grid (Tables 1-4): a sweep of one or more settings around the base.
def _rnn_grid():
    """A table is one sweep (a mapping) or a list of sweeps whose rows follow each other."""
    base = config["rnn"]["base"]
    tables, configs = {}, {}
    for table in SWEEP_TABLES:
        sweeps = config["rnn"]["tables"][table]
        rows = []
        for sweep in sweeps if isinstance(sweeps, list) else [sweeps]:
            keys = list(sweep)
            for values in itertools.product(*(sweep[key] for key in keys)):
                settings = {**base, **dict(zip(keys, values))}
                name = rnn_name(settings)
                configs[name] = (
                    settings  # identical settings share a name: trained once
                )
                rows.append((dict(zip(keys, values)), name))
        tables[table] = rows
    return tables, configs


RNN_ROWS, RNN_CONFIGS = _rnn_grid()


wildcard_constraints:
    subject="|".join(re.escape(s) for s in SUBJECTS),
    variant="|".join(re.escape(v) for v in VARIANTS),
    name="|".join(re.escape(n) for n in RNN_CONFIGS),
    run=RUN_PATTERN,


def label_files(subject_list):
    dim = config["dimension"]
    return [
        RECORDINGS[s]["labels"][dim]
        for s in subject_list
        if dim in RECORDINGS[s]["labels"]
    ]


def table_files():
    return [table_path(n, fmt) for n in TABLES for fmt in TABLE_FORMATS]


def figure_files():
    return [figure_path(FIGURE3), figure_path(TRAINING_CURVES)]


# ---- the tables' layout: which metrics files make which row (mean +- sd over seeds).
def _runs(seeds, selection=None):
    return [
        run_id(seed, selection or HEADLINE_SELECTION, HEADLINE_SELECTION)
        for seed in seeds
    ]


def _selected_elsewhere(kind, model):
    """Table 1's extra columns: the same model selected by each non-headline selection (first seed)."""
    return {
        selection: [
            metrics_path(kind, model, run) for run in _runs(SEEDS[:1], selection)
        ]
        for selection in MODEL_SELECTIONS[1:]
    }


def _cnn_row(variant):
    return {
        "label": cnn_label(variant),
        "key": cnn_row_key(variant),
        "metrics": [metrics_path("cnn", variant, run) for run in _runs(SEEDS)],
        # the CNN whose features feed the RNNs is retrained for each further selection anyway
        "selected": (
            _selected_elsewhere("cnn", variant) if variant == RNN_FEATURES else {}
        ),
    }


def rnn_label(swept):
    return "CNN+RNN ({})".format(
        ", ".join(f"{key}={value}" for key, value in swept.items())
    )


def _rnn_row(swept, name, seeds, with_selections=False):
    return {
        "label": rnn_label(swept),
        "key": rnn_row_key(swept),
        "metrics": [metrics_path("rnn", name, run) for run in _runs(seeds)],
        "selected": _selected_elsewhere("rnn", name) if with_selections else {},
    }


def tables_layout():
    cnn_rows = [_cnn_row(v) for v in VARIANTS]
    table1_rnn = [
        _rnn_row(swept, name, SEEDS, True) for swept, name in RNN_ROWS["table1"]
    ]
    sweeps = {
        t: [_rnn_row(swept, name, SWEEP_SEEDS) for swept, name in RNN_ROWS[t]]
        for t in SWEEP_TABLES[1:]
    }
    return {
        "partition": EVAL_PARTITION,
        "dimension": config["dimension"],
        "rnn_features": cnn_label(RNN_FEATURES),
        "rnn_base": config["rnn"]["base"],
        "rnn_feature_norm": RNN_FEATURE_NORM,
        "cnn_normalization": config["cnn"]["normalization"],
        "selection": HEADLINE_SELECTION,
        "tables": {
            "1": cnn_rows + table1_rnn,
            "2": sweeps["table2"],
            "3": sweeps["table3"],
            "4": sweeps["table4"],
            "5": cnn_rows + table1_rnn,
        },
    }


def _model_runs():
    """(kind, model, run) of every model the tables need."""
    runs = {("cnn", v, r) for v in VARIANTS for r in _runs(SEEDS)}
    table1 = {name for _, name in RNN_ROWS["table1"]}
    sweeps = {n for t in SWEEP_TABLES[1:] for _, n in RNN_ROWS[t]}
    for name in RNN_CONFIGS:
        seeds = set(SEEDS if name in table1 else []) | set(
            SWEEP_SEEDS if name in sweeps else []
        )
        runs |= {("rnn", name, r) for r in _runs(sorted(seeds))}
    for selection in MODEL_SELECTIONS[1:]:
        extra = _runs(SEEDS[:1], selection)
        runs |= {("cnn", RNN_FEATURES, r) for r in extra}
        runs |= {("rnn", name, r) for name in table1 for r in extra}
    return sorted(runs)


MODEL_RUNS = _model_runs()


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
FIGURE_RUN = _runs(SEEDS[:1])[0]
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


# ---- annotate: a per-frame table for every video of a folder (`snakemake annotate`).
ANNOTATE = config.get("annotate") or {}


def _annotate_videos():
    if not ANNOTATE.get("videos"):
        return {}
    from affectflow.annotate import list_videos
    from affectflow.errors import AffectflowError

    try:
        return {key: str(path) for key, path in list_videos(ANNOTATE["videos"]).items()}
    except (AffectflowError, OSError) as error:
        raise WorkflowError(f"config annotate.videos: {error}")


ANNOTATE_VIDEOS = _annotate_videos()
ANNOTATE_LOGS = ["logs/annotate/align", "logs/annotate/predict"]


def annotate_models(wildcards=None):
    """annotate.models, else the workflow's own base RNN (first seed) once it is trained."""
    if ANNOTATE.get("models"):
        return list(ANNOTATE["models"])
    own = model_file("rnn", FIGURE_RNN, FIGURE_RUN)
    if os.path.exists(own):
        return [own]
    raise WorkflowError(
        f"config annotate.models: none given, and the workflow's own model {own} is not trained yet "
        "(run the workflow first, or name model files: --config 'annotate={videos: DIR, models: [M.pt]}')"
    )


def annotate_targets(wildcards=None):
    if not ANNOTATE_VIDEOS:
        raise WorkflowError(
            "config annotate.videos: not set; e.g. snakemake annotate --cores 4 "
            "--config 'annotate={videos: my_videos/, models: [results/rnn/.../model.pt]}'"
        )
    return [annotations_summary_path()] + [
        annotation_path(video, ext)
        for video in ANNOTATE_VIDEOS
        for ext in ("csv", "png")
    ]


def annotate_summary_command(output):
    """The summary of the folder: also run by `onerror`, so that failed videos are listed with their reason."""
    return shlex.join(
        ["affectflow", "annotate-summary", "--ids", *ANNOTATE_VIDEOS]
        + ["--annotations", os.path.dirname(annotations_summary_path())]
        + ["--logs", *ANNOTATE_LOGS, "-o", output]
    )
