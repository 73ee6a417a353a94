"""The names every part of affectflow agrees on, spelled once.

Dimensions, partitions, the AV+EC 2015 corpus layout, metric names, the CNN
variants, the workflow's results layout, run and model names, and the tables'
row keys. The package imports them from here, and so does the workflow
(``workflow/rules/common.smk``); the config schema's enumerations are checked
against them by the test suite. See docs/design.md, "File contracts".

This module imports nothing heavy: Snakemake loads it when it parses the workflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# ---- the corpus
DIMENSIONS = ("valence", "arousal")
PARTITIONS = ("train", "dev", "test")
SUBJECT_PATTERN = re.compile(r"^(train|dev|test)_(\d+)$")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
# AV+EC 2015 / RECOLA: recordings_video/{subject}.mp4, ratings_gold_standard/{dimension}/{subject}.arff
AVEC_VIDEO_DIR = "recordings_video"
AVEC_LABEL_DIR = "ratings_gold_standard"
LABEL_TIME_COLUMN = "frameTime"
LABEL_VALUE_COLUMN = "GoldStandard"
LABEL_STEP_S = 0.04  # the gold standard has a row every 40 ms, from t = 0


def avec_video(subject: str, suffix: str = ".mp4") -> str:
    """A subject's video, relative to an AV+EC 2015 corpus root."""
    return f"{AVEC_VIDEO_DIR}/{subject}{suffix}"


def avec_labels(dimension: str, subject: str) -> str:
    """A subject's gold standard for one dimension, relative to an AV+EC 2015 corpus root."""
    return f"{AVEC_LABEL_DIR}/{dimension}/{subject}.arff"


# ---- scores
METRICS = ("rmse", "cc", "ccc")  # RMSE, Pearson CC, concordance correlation coefficient

# ---- models
MODEL_KINDS = ("cnn", "rnn")
# The paper's single-frame CNN variants: (augmentation, dropout on the FC layer's input).
CNN_VARIANTS: Mapping[str, tuple[bool, float]] = {
    "plain": (False, 0.0),
    "D": (False, 0.5),
    "A": (True, 0.0),
    "AD": (True, 0.5),
}
CNN_LABELS = {"plain": "CNN", "D": "CNN+D", "A": "CNN+A", "AD": "CNN+AD"}
# Model choice by CCC on dev (the paper) or on a held-out training subject.
SELECTIONS = ("dev", "validation")
RNN_SETTINGS = ("cell", "nonlinearity", "hidden", "window", "layers")
# Weight initializations (affectflow.models documents them): the CNN's, and the Elman RNN's recurrence.
INITS = ("paper", "he", "pytorch")
RECURRENT_INITS = ("pytorch", "identity")
MODEL_FILE = "model.pt"
RUN_FILE = "run.json"
HISTORY_FILE = "history.tsv"


def cnn_label(variant: str) -> str:
    return CNN_LABELS.get(variant, f"CNN+{variant}")


def rnn_name(settings: Mapping) -> str:
    """An RNN configuration's folder name, e.g. ``elman-tanh-h100-w100-l1``."""
    return "{cell}-{nonlinearity}-h{hidden}-w{window}-l{layers}".format(**settings)


# ---- run names: seed{N} for the headline selection, seed{N}-{selection} for another one
RUN_PATTERN = r"seed\d+(-(" + "|".join(SELECTIONS) + r"))?"


def run_id(seed: int, selection: str, headline: str) -> str:
    return f"seed{seed}" if selection == headline else f"seed{seed}-{selection}"


def run_seed(run: str) -> int:
    match = re.fullmatch(RUN_PATTERN, run)
    if not match:
        raise ValueError(f"not a run name: {run!r} (expected seed<N> or seed<N>-<selection>)")
    return int(run[4:].split("-", 1)[0])


def run_selection(run: str, headline: str) -> str:
    return run.split("-", 1)[1] if "-" in run else headline


# ---- the workflow's results layout
RESULTS = "results"


def faces_path(subject: str, results: str = RESULTS) -> str:
    return f"{results}/faces/{subject}.h5"


def cnn_dir(variant: str, run: str, results: str = RESULTS) -> str:
    return f"{results}/cnn/{variant}/{run}"


def rnn_dir(name: str, run: str, results: str = RESULTS) -> str:
    return f"{results}/rnn/{name}/{run}"


def model_dir(kind: str, model: str, run: str, results: str = RESULTS) -> str:
    return cnn_dir(model, run, results) if kind == "cnn" else rnn_dir(model, run, results)


def features_dir(variant: str, run: str, results: str = RESULTS) -> str:
    return f"{results}/features/{variant}/{run}"


def features_path(variant: str, run: str, subject: str, results: str = RESULTS) -> str:
    """One subject's feature file of a CNN run."""
    return f"{features_dir(variant, run, results)}/{subject}.h5"


def metrics_path(kind: str, model: str, run: str, results: str = RESULTS) -> str:
    return f"{results}/metrics/{kind}/{model}/{run}.json"


def predictions_dir(kind: str, model: str, run: str, results: str = RESULTS) -> str:
    return f"{results}/predictions/{kind}/{model}/{run}"


def predictions_path(kind: str, model: str, run: str, subject: str, results: str = RESULTS) -> str:
    """One subject's predictions CSV of a run."""
    return f"{predictions_dir(kind, model, run, results)}/{subject}.csv"


# ---- the tables
TABLES = ("1", "2", "3", "4", "5")
TABLE_FORMATS = ("md", "tsv")
# The workflow config's RNN sweeps (rnn.tables): Table 1's CNN+RNN rows and Tables 2-4 (Table 5 repeats Table 1).
SWEEP_TABLES = ("table1", "table2", "table3", "table4")


def table_path(table: str, fmt: str, results: str = RESULTS) -> str:
    return f"{results}/tables/table{table}.{fmt}"


def cnn_row_key(variant: str) -> str:
    return f"cnn:{variant}"


def rnn_row_key(swept: Mapping) -> str:
    """The key of a CNN+RNN row: the settings its sweep changed, e.g. ``rnn:nonlinearity=tanh``."""
    return "rnn:" + ",".join(f"{key}={value}" for key, value in swept.items())


# ---- the figures
FIGURE3 = "figure3.png"
FIGURE3_SMOOTHNESS = "figure3_smoothness.json"
TRAINING_CURVES = "training_curves.png"


def figure_path(name: str, results: str = RESULTS) -> str:
    return f"{results}/figures/{name}"


# ---- annotating a folder of videos (the workflow's `annotate` target)
VIDEO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ANNOTATIONS_SUMMARY = "summary.tsv"


def annotation_path(video_id: str, ext: str = "csv", results: str = RESULTS) -> str:
    """A video's annotations: ``{id}.csv`` (one row per frame), ``{id}.json`` (its summary), ``{id}.png``."""
    return f"{results}/annotations/{video_id}.{ext}"


def annotation_faces_path(video_id: str, results: str = RESULTS) -> str:
    return f"{results}/annotations/faces/{video_id}.h5"


def annotations_summary_path(results: str = RESULTS) -> str:
    return f"{results}/annotations/{ANNOTATIONS_SUMMARY}"


def video_id(path: str) -> str:
    """A video's id from its file name: the stem, with characters other than letters, digits, '.', '_'
    and '-' replaced by '_'."""
    stem = path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", stem)
    return cleaned if VIDEO_ID_PATTERN.match(cleaned) else f"v_{cleaned}"
