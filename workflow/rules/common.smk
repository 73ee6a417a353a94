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
SEEDS = (
    list(range(config["seeds"]))
    if isinstance(config["seeds"], int)
    else list(config["seeds"])
)
CNN_VARIANTS = list(config["cnn"]["variants"])
RNN_FEATURES = config["rnn"]["features"]
EVAL_PARTITION = config["evaluate"]["partition"]

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
    base = config["rnn"]["base"]
    tables, configs = {}, {}
    for table, sweep in config["rnn"]["tables"].items():
        keys = list(sweep)
        rows = []
        for values in itertools.product(*(sweep[key] for key in keys)):
            settings = {**base, **dict(zip(keys, values))}
            name = rnn_name(settings)
            configs[name] = settings  # identical settings share a name: trained once
            rows.append((dict(zip(keys, values)), name))
        tables[table] = rows
    return tables, configs


RNN_TABLES, RNN_CONFIGS = _rnn_grid()


wildcard_constraints:
    subject="|".join(re.escape(s) for s in SUBJECTS),
    variant="|".join(re.escape(v) for v in CNN_VARIANTS),
    name="|".join(re.escape(n) for n in RNN_CONFIGS),
    seed=r"\d+",


# ---- paths
def faces_path(subject):
    return f"{RESULTS}/faces/{subject}.h5"


def cnn_dir(variant, seed):
    return f"{RESULTS}/cnn/{variant}/seed{seed}"


def rnn_dir(name, seed):
    return f"{RESULTS}/rnn/{name}/seed{seed}"


def features_dir(variant, seed):
    return f"{RESULTS}/features/{variant}/seed{seed}"


def metrics_path(kind, model, seed):
    return f"{RESULTS}/metrics/{kind}/{model}/seed{seed}.json"


def predictions_dir(kind, model, seed):
    return f"{RESULTS}/predictions/{kind}/{model}/seed{seed}"


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


def figure_files():
    return [
        f"{RESULTS}/figures/figure3.png",
        f"{RESULTS}/figures/training_curves.png",
    ]


# ---- the tables' layout: which metrics files make which row (mean +- sd over seeds).
CNN_LABELS = {"plain": "CNN", "D": "CNN+D", "A": "CNN+A", "AD": "CNN+AD"}


def _cnn_row(variant):
    return {
        "label": CNN_LABELS.get(variant, f"CNN+{variant}"),
        "key": f"cnn:{variant}",
        "metrics": [metrics_path("cnn", variant, seed) for seed in SEEDS],
    }


def _rnn_row(swept, name):
    label = ", ".join(f"{key}={value}" for key, value in swept.items())
    swept_key = ",".join(f"{key}={value}" for key, value in swept.items())
    return {
        "label": f"CNN+RNN ({label})",
        "key": f"rnn:{swept_key}",
        "metrics": [metrics_path("rnn", name, seed) for seed in SEEDS],
    }


def tables_layout():
    cnn_rows = [_cnn_row(v) for v in CNN_VARIANTS]
    rnn_rows = {
        t: [_rnn_row(swept, name) for swept, name in rows]
        for t, rows in RNN_TABLES.items()
    }
    return {
        "partition": EVAL_PARTITION,
        "dimension": config["dimension"],
        "rnn_features": CNN_LABELS.get(RNN_FEATURES, RNN_FEATURES),
        "rnn_base": config["rnn"]["base"],
        "tables": {
            "1": cnn_rows + rnn_rows["table1"],
            "2": rnn_rows["table2"],
            "3": rnn_rows["table3"],
            "4": rnn_rows["table4"],
            "5": cnn_rows + rnn_rows["table1"],
        },
    }


def all_metrics_files():
    files = [metrics_path("cnn", v, s) for v in CNN_VARIANTS for s in SEEDS]
    files += [metrics_path("rnn", n, s) for n in RNN_CONFIGS for s in SEEDS]
    return files
