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
# AV+EC 2015 subject names (its videos' names give the partition). Other layouts name subjects freely and
# give each recording its partition (corpus.Recording.partition): nothing may read a partition off a name.
SUBJECT_PATTERN = re.compile(r"^(train|dev|test)_(\d+)$")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
# AV+EC 2015 / RECOLA: recordings_video/{subject}.mp4, ratings_gold_standard/{dimension}/{subject}.arff
AVEC_VIDEO_DIR = "recordings_video"
AVEC_LABEL_DIR = "ratings_gold_standard"
LABEL_TIME_COLUMN = "frameTime"
LABEL_VALUE_COLUMN = "GoldStandard"
LABEL_STEP_S = 0.04  # the gold standard has a row every 40 ms, from t = 0

# How a recording's labels are indexed: "time" (AV+EC, sheets: rows at stated times, interpolated at frame
# times) or "frame" (Aff-Wild2: line k labels decoded frame k).
LABELS_BY = ("time", "frame")
# Aff-Wild2 (ABAW's valence-arousal track): videos anywhere under videos/, one label file per recording
# annotations/VA_Estimation_Challenge/{Train_Set,Validation_Set}/{subject}.txt (header "valence,arousal",
# line k = decoded frame k, -5 where that frame has no valid annotation); test subjects from a list file.
AFFWILD2_VIDEO_DIR = "videos"
AFFWILD2_LABEL_DIR = "annotations/VA_Estimation_Challenge"
AFFWILD2_SETS = {"train": "Train_Set", "dev": "Validation_Set"}  # partition -> folder under AFFWILD2_LABEL_DIR
AFFWILD2_HEADER = "valence,arousal"
# the release's aligned face crops, cropped_aligned/NAME/00001.jpg (decoded frame 0), ...: a face source
AFFWILD2_CROPS_DIR = "cropped_aligned"
FACE_SOURCES = ("detect", "release")  # config align.source: our own detections, or the release's crops
AFFWILD2_NO_LABEL = -5.0
# A label file may have this many lines more or fewer than its video has decoded frames.
AFFWILD2_FRAME_TOLERANCE = 5
# Subject names of the Aff-Wild2 layout (free-form, e.g. 1-30-1280x720, video5_left): file-name safe, as the
# workflow's {subject}.h5 files and shell commands need.
SUBJECT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
# An RNN configuration's settings, in the order of its folder name, each with its prefix there
# (rnn_name) and a train-rnn flag of its own name (rnn_flags).
RNN_SETTINGS = (("cell", ""), ("nonlinearity", ""), ("hidden", "h"), ("window", "w"), ("layers", "l"))
# Weight initializations (affectflow.nets.networks documents them): the CNN's, and the Elman RNN's recurrence.
INITS = ("paper", "he", "pytorch")
RECURRENT_INITS = ("pytorch", "identity")
RNN_CELLS = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu")  # of the Elman RNN
RNN_LAYERS = (1, 2, 3)  # the paper's stacks: h; h, h; h, h, h/2
LOSSES = ("mse", "ccc")
# RNN input standardization (affectflow.nets.rnn_inputs.rnn_inputs documents them); "transductive" uses frames after t.
FEATURE_NORMS = ("causal", "train", "recording-transductive")
DEFAULT_FEATURE_NORM = "causal"
DEVICES = ("auto", "cpu", "cuda")

# ---- faces
# Chip normalizations (affectflow.faces.normalize documents them); local-mean is the authors' Normer3 as it ran.
NORMALIZATIONS = ("gcn", "lcn-box", "lcn-gauss", "local-mean", "none")
DEFAULT_NORMALIZATION = "local-mean"
LANDMARK_POINTS = (5, 68)
DEFAULT_CHIP_SIZE = 96
# Which face `align` follows in a video of several (affectflow._native.FACE_RULES, equal): the detector's
# best score, or the leftmost / rightmost face in the frame (Aff-Wild2's NAME_left and NAME_right).
FACE_RULES = ("best", "left", "right")
DEFAULT_FACE_RULE = "best"
# The CNN's two 2x2 max-pools and its quadrant pooling need a multiple of 4; below 16 no face is left.
CHIP_SIZE_RANGE = (16, 512)
CHIP_SIZE_MULTIPLE = 4


def chip_size_problem(size: int) -> str | None:
    """Why `size` cannot be a chip size (None when it can): the one rule, used by align, the CNN and
    the config schema (whose minimum, maximum and multipleOf the tests hold equal to it)."""
    low, high = CHIP_SIZE_RANGE
    if not low <= size <= high:
        return f"chip size {size} is outside {low}..{high}"
    if size % CHIP_SIZE_MULTIPLE:
        return (
            f"chip size {size} is not a multiple of {CHIP_SIZE_MULTIPLE} (the CNN pools by 2 twice, then by quadrant)"
        )
    return None


MODEL_FILE = "model.safetensors"  # affectflow.modelfile owns its format
CHECKPOINT_FILE = "checkpoint.pt"
RUN_FILE = "run.json"
HISTORY_FILE = "history.tsv"


def cnn_label(variant: str) -> str:
    return CNN_LABELS.get(variant, f"CNN+{variant}")


def rnn_name(settings: Mapping) -> str:
    """An RNN configuration's folder name, e.g. ``elman-tanh-h100-w100-l1``."""
    return "-".join(f"{prefix}{settings[name]}" for name, prefix in RNN_SETTINGS)


def rnn_flags(settings: Mapping) -> str:
    """An RNN configuration as train-rnn's flags, e.g. ``--cell rnn --nonlinearity tanh --hidden 100 ...``."""
    return " ".join(f"--{name} {settings[name]}" for name, _ in RNN_SETTINGS)


# ---- run names: seed{N} for the headline selection, seed{N}-{selection} for another one; a further
# dimension of the config's (every one but the first) adds -{dimension}: seed0-arousal, seed0-validation-arousal.
RUN_PATTERN = r"seed\d+(-(" + "|".join(SELECTIONS) + r"))?(-(" + "|".join(DIMENSIONS) + r"))?"


def run_id(seed: int, selection: str, headline: str, dimension: str | None = None, first: str | None = None) -> str:
    """A run's name; ``dimension`` other than ``first`` (the config's first dimension) is named in it."""
    run = f"seed{seed}" if selection == headline else f"seed{seed}-{selection}"
    return run if dimension is None or dimension == first else f"{run}-{dimension}"


def _run_parts(run: str) -> list[str]:
    if not re.fullmatch(RUN_PATTERN, run):
        raise ValueError(
            f"not a run name: {run!r} (expected seed<N>, seed<N>-<selection>, seed<N>[-<selection>]-<dimension>)"
        )
    return run.split("-")


def run_seed(run: str) -> int:
    return int(_run_parts(run)[0][4:])


def run_selection(run: str, headline: str) -> str:
    return next((part for part in _run_parts(run)[1:] if part in SELECTIONS), headline)


def run_dimension(run: str, first: str) -> str:
    """The dimension a run trains and scores: the one it names, else the config's first."""
    return next((part for part in _run_parts(run)[1:] if part in DIMENSIONS), first)


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
# With two or more dimensions (config `dimension: [valence, arousal]`): Table 1's rows' CCC per dimension and P_VA.
DIMENSIONS_TABLE = "6"


def table_numbers(n_dimensions: int = 1) -> tuple[str, ...]:
    """The tables a config with ``n_dimensions`` dimensions has: Tables 1-5, and Table 6 beyond one dimension."""
    return TABLES + ((DIMENSIONS_TABLE,) if n_dimensions > 1 else ())


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


def annotations_dir(results: str = RESULTS) -> str:
    """The folder of every video's table (`{id}.csv`), plot and outcome (`{id}.json`)."""
    return f"{results}/annotations"


def annotation_plan_path(results: str = RESULTS) -> str:
    """Which batch each video belongs to (affectflow.annotation.batches)."""
    return f"{results}/annotations/batches/plan.tsv"


def annotation_work_dir(batch_round: str, results: str = RESULTS) -> str:
    """A batch round's aligned faces (temporary); the round is ``{batch}-{state}`` (affectflow.annotation.batches)."""
    return f"{results}/annotations/work/{batch_round}"


def annotation_batch_marker(batch_round: str, results: str = RESULTS) -> str:
    """What a batch round did, written last (id, status, error)."""
    return f"{results}/annotations/batches/{batch_round}.tsv"


def annotations_summary_path(results: str = RESULTS) -> str:
    return f"{results}/annotations/{ANNOTATIONS_SUMMARY}"


def video_id(path: str) -> str:
    """A video's id from its file name: the stem, with characters other than letters, digits, '.', '_'
    and '-' replaced by '_'."""
    stem = path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", stem)
    return cleaned if VIDEO_ID_PATTERN.match(cleaned) else f"v_{cleaned}"
