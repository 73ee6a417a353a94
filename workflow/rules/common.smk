# Parse-time helpers: config validation, the subject list, the model grids.
# Everything the rules fan out over is computed here from the config and the corpus.

import itertools
import json
import os
import re
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

RESULTS = "results"
CORPUS = config["corpus"]["path"]
SYNTHETIC = config["corpus"].get("synthetic")
DIMENSIONS = ("valence", "arousal")
PARTITIONS = ("train", "dev", "test")


def _seed_list(value):
    return list(range(value)) if isinstance(value, int) else list(value)


# Table 1's rows (CNN variants, CNN+RNN nonlinearities) run every seed; the sweeps of
# Tables 2-4 run `sweep_seeds` (default: all seeds), so a small budget can say so.
SEEDS = _seed_list(config["seeds"])
SWEEP_SEEDS = _seed_list(config.get("sweep_seeds", config["seeds"]))
# Model selection: the first entry picks the models of every table (the paper: dev); each
# further entry retrains, first seed only, the feature CNN (rnn.features) and Table 1's
# CNN+RNN rows selected that way, shown beside them.
SELECTIONS = (
    [config["selection"]]
    if isinstance(config["selection"], str)
    else list(config["selection"])
)
HEADLINE_SELECTION = SELECTIONS[0]
CNN_VARIANTS = list(config["cnn"]["variants"])
RNN_FEATURES = config["rnn"]["features"]
RNN_FEATURE_NORM = config["rnn"].get("feature_norm", "causal")
EVAL_PARTITION = config["evaluate"]["partition"]

if isinstance(config["cnn"]["epochs"], dict):
    _missing = [v for v in CNN_VARIANTS if v not in config["cnn"]["epochs"]]
    if _missing:
        raise WorkflowError(
            f"config cnn.epochs: no epoch count for variant(s) {_missing}"
        )

if RNN_FEATURES not in CNN_VARIANTS:
    raise WorkflowError(
        f"config rnn.features: CNN variant {RNN_FEATURES!r} is not in cnn.variants {CNN_VARIANTS}"
    )


def _synthetic_recordings():
    """Subjects of the corpus that synth_corpus will write (it does not exist yet at parse time)."""
    recordings = {}
    for partition, count in zip(PARTITIONS, SYNTHETIC["subjects"]):
        for index in range(1, count + 1):
            subject = f"{partition}_{index}"
            recordings[subject] = {
                "partition": partition,
                "video": f"{CORPUS}/recordings_video/{subject}.mp4",
                "labels": {
                    dim: f"{CORPUS}/ratings_gold_standard/{dim}/{subject}.arff"
                    for dim in DIMENSIONS
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


for _needed in ("train", "dev", EVAL_PARTITION):
    if not subjects(_needed):
        raise WorkflowError(
            f"config: no {_needed!r} subjects to use (corpus {CORPUS!r}, partitions {config['partitions']})"
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
RNN_SETTINGS = ("cell", "nonlinearity", "hidden", "window", "layers")


def rnn_name(settings):
    return "{cell}-{nonlinearity}-h{hidden}-w{window}-l{layers}".format(**settings)


def _rnn_grid():
    """A table is one sweep (a mapping) or a list of sweeps whose rows follow each other."""
    base = config["rnn"]["base"]
    tables, configs = {}, {}
    for table, sweeps in config["rnn"]["tables"].items():
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


RNN_TABLES, RNN_CONFIGS = _rnn_grid()


wildcard_constraints:
    subject="|".join(re.escape(s) for s in SUBJECTS),
    variant="|".join(re.escape(v) for v in CNN_VARIANTS),
    name="|".join(re.escape(n) for n in RNN_CONFIGS),
    run=r"seed\d+(-(dev|validation))?",


# ---- paths
def faces_path(subject):
    return f"{RESULTS}/faces/{subject}.h5"


def run_id(seed, selection=None):
    """A run's folder name: seed{N}, or seed{N}-{selection} for a non-headline model selection."""
    selection = selection or HEADLINE_SELECTION
    return (
        f"seed{seed}" if selection == HEADLINE_SELECTION else f"seed{seed}-{selection}"
    )


def run_seed(run):
    return int(re.match(r"seed(\d+)", run).group(1))


def run_selection(run):
    return run.split("-", 1)[1] if "-" in run else HEADLINE_SELECTION


def cnn_dir(variant, run):
    return f"{RESULTS}/cnn/{variant}/{run}"


def rnn_dir(name, run):
    return f"{RESULTS}/rnn/{name}/{run}"


def features_dir(variant, run):
    return f"{RESULTS}/features/{variant}/{run}"


def metrics_path(kind, model, run):
    return f"{RESULTS}/metrics/{kind}/{model}/{run}.json"


def predictions_dir(kind, model, run):
    return f"{RESULTS}/predictions/{kind}/{model}/{run}"


def label_files(subject_list):
    dim = config["dimension"]
    return [
        RECORDINGS[s]["labels"][dim]
        for s in subject_list
        if dim in RECORDINGS[s]["labels"]
    ]


def table_files():
    return [
        f"{RESULTS}/tables/table{n}.{ext}" for n in range(1, 6) for ext in ("md", "tsv")
    ]


FIGURE_SUBJECT = config["figures"].get("subject") or subjects(EVAL_PARTITION)[0]
if FIGURE_SUBJECT not in subjects(EVAL_PARTITION):
    raise WorkflowError(
        f"config figures.subject: {FIGURE_SUBJECT!r} is not a {EVAL_PARTITION} subject"
    )
FIGURE_CNN = config["figures"].get("cnn") or RNN_FEATURES
FIGURE_RNN = rnn_name(config["rnn"]["base"])
FIGURE_RUN = run_id(SEEDS[0])


def figure_files():
    return [
        f"{RESULTS}/figures/figure3.png",
        f"{RESULTS}/figures/training_curves.png",
    ]


# ---- the tables' layout: which metrics files make which row (mean +- sd over seeds).
CNN_LABELS = {"plain": "CNN", "D": "CNN+D", "A": "CNN+A", "AD": "CNN+AD"}


def _runs(seeds, selection=None):
    return [run_id(seed, selection) for seed in seeds]


def _selected_elsewhere(kind, model):
    """Table 1's extra columns: the same model selected by each non-headline selection (first seed)."""
    return {
        selection: [
            metrics_path(kind, model, run) for run in _runs(SEEDS[:1], selection)
        ]
        for selection in SELECTIONS[1:]
    }


def _cnn_row(variant):
    return {
        "label": CNN_LABELS.get(variant, f"CNN+{variant}"),
        "key": f"cnn:{variant}",
        "metrics": [metrics_path("cnn", variant, run) for run in _runs(SEEDS)],
        # the CNN whose features feed the RNNs is retrained for each further selection anyway
        "selected": (
            _selected_elsewhere("cnn", variant) if variant == RNN_FEATURES else {}
        ),
    }


def _rnn_row(swept, name, seeds, with_selections=False):
    label = ", ".join(f"{key}={value}" for key, value in swept.items())
    swept_key = ",".join(f"{key}={value}" for key, value in swept.items())
    return {
        "label": f"CNN+RNN ({label})",
        "key": f"rnn:{swept_key}",
        "metrics": [metrics_path("rnn", name, run) for run in _runs(seeds)],
        "selected": _selected_elsewhere("rnn", name) if with_selections else {},
    }


def tables_layout():
    cnn_rows = [_cnn_row(v) for v in CNN_VARIANTS]
    table1_rnn = [
        _rnn_row(swept, name, SEEDS, True) for swept, name in RNN_TABLES["table1"]
    ]
    rnn_rows = {
        t: [_rnn_row(swept, name, SWEEP_SEEDS) for swept, name in rows]
        for t, rows in RNN_TABLES.items()
        if t != "table1"
    }
    return {
        "partition": EVAL_PARTITION,
        "dimension": config["dimension"],
        "rnn_features": CNN_LABELS.get(RNN_FEATURES, RNN_FEATURES),
        "rnn_base": config["rnn"]["base"],
        "rnn_feature_norm": RNN_FEATURE_NORM,
        "cnn_normalization": config["cnn"]["normalization"],
        "selection": HEADLINE_SELECTION,
        "tables": {
            "1": cnn_rows + table1_rnn,
            "2": rnn_rows["table2"],
            "3": rnn_rows["table3"],
            "4": rnn_rows["table4"],
            "5": cnn_rows + table1_rnn,
        },
    }


def _model_runs():
    """(kind, model, run) of every model the tables need."""
    runs = {("cnn", v, r) for v in CNN_VARIANTS for r in _runs(SEEDS)}
    table1 = {name for _, name in RNN_TABLES["table1"]}
    sweeps = {n for t, rows in RNN_TABLES.items() if t != "table1" for _, n in rows}
    for name in RNN_CONFIGS:
        seeds = set(SEEDS if name in table1 else []) | set(
            SWEEP_SEEDS if name in sweeps else []
        )
        runs |= {("rnn", name, r) for r in _runs(sorted(seeds))}
    for selection in SELECTIONS[1:]:
        extra = _runs(SEEDS[:1], selection)
        runs |= {("cnn", RNN_FEATURES, r) for r in extra}
        runs |= {("rnn", name, r) for name in table1 for r in extra}
    return sorted(runs)


def all_metrics_files():
    return [metrics_path(kind, model, run) for kind, model, run in _model_runs()]


def all_histories():
    return [
        f"{cnn_dir(model, run) if kind == 'cnn' else rnn_dir(model, run)}/history.tsv"
        for kind, model, run in _model_runs()
    ]
