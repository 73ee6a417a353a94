"""The data a training command assembles from its files: which subjects train, select and score; their
frames and labels (at the label shift, fitted on training subjects for `auto`); the recordings scored
each epoch; and run.json's entries about them. The commands (affectflow.learning.commands) build the
network and call the loop (affectflow.learning.loop) with what this returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.corpus import open_corpus
from ..data.label_shift import descriptor_from_chips, fit_label_shift, shift_fit_rows
from ..data.labels import frame_labels
from ..errors import AffectflowError, fail
from .loop import CNNBatches, RNNWindows
from .settings import CNNTraining, EvalSet, RNNTraining


@dataclass
class Subjects:
    """The given files' subjects by role, in corpus order."""

    train: list[str]
    dev: list[str]
    validation: list[str]


def split_subjects(corpus, selection: str, corpus_path: Path, files: list[Path]) -> Subjects:
    """The subjects of the given files ({subject}.h5). Validation = last training subject when there are
    >= 2 and selection is on validation, else none (the caller then holds out the last 20% of frames)."""
    given = {Path(f).stem: Path(f) for f in files}
    unknown = sorted(set(given) - set(corpus.subjects()))
    if unknown:
        raise fail(given[unknown[0]], f"subject {unknown[0]!r} is not in the corpus {corpus_path}")
    train = [s for s in corpus.subjects("train") if s in given]
    dev = [s for s in corpus.subjects("dev") if s in given]
    if not train:
        raise fail(corpus_path, "none of the given files is a training subject's")
    validation: list[str] = []
    if selection == "validation" and len(train) >= 2:
        validation = [train[-1]]
        train = train[:-1]
    return Subjects(train, dev, validation)


def resolve_label_shift(text: str, fit) -> tuple[float, dict | None]:
    """(seconds, the fit's record or None): `text` is seconds, or 'auto' (then `fit()` fits it)."""
    if text == "auto":
        result = fit()
        return result["shift"], result
    from ..modelfile import MAX_LABEL_SHIFT_S

    try:
        shift = float(text)
    except ValueError:
        raise AffectflowError(f"--label-shift: expected seconds or 'auto', got {text!r}") from None
    if not abs(shift) <= MAX_LABEL_SHIFT_S:  # NaN too
        raise AffectflowError(f"--label-shift: {text!r} is not a number of seconds within +-{MAX_LABEL_SHIFT_S:g}")
    return shift, None


def label_info(shift: float, fit: dict | None) -> dict:
    return {
        "label_shift": shift,
        "label_shift_mode": "auto (fit on training subjects)" if fit else "fixed",
        "label_shift_fit": fit,
    }


def run_info(training, fields: tuple[str, ...], extra: dict, device) -> dict:
    """run.json: the recorded settings as plain values, then `extra`, and the device the run used."""
    from .. import __version__
    from ..data.fill import FILL_POLICY

    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    settings = {name: plain(getattr(training, name)) for name in fields}
    settings.update({"fill_policy": FILL_POLICY, "affectflow_version": __version__})
    settings.update(extra)
    settings["device"] = str(device)
    return settings


def eval_sets(training, corpus, subjects: Subjects, frames, holdout, device, frame_wise: bool = False):
    """The recordings scored each epoch: dev (if labelled) and the validation split.

    `frames[subject]` has .data (model inputs on every frame) and .time; `holdout` = (data, time, gold)
    of a single training subject's last 20% of frames. Every eval_stride-th frame's time and gold are
    kept, and its input too when the model is `frame_wise` (the CNN; the RNN's windows need every
    frame). Returns (eval sets, name of the selection set, run.json entries).
    """
    every = max(1, training.eval_stride)
    input_every = every if frame_wise else 1
    dimension = training.dimension

    def inputs(data):
        if isinstance(data, np.ndarray):
            return torch.from_numpy(data[::input_every]).to(device)
        return data  # read chunk by chunk (affectflow.learning.stream.ChunkedRecording), already every `every`-th frame

    def eval_set(name, names):
        return EvalSet(
            name,
            [inputs(frames[s].data) for s in names],
            [frames[s].time[::every] for s in names],
            [frame_labels(corpus.recording(s), dimension, frames[s].time)[::every] for s in names],
        )

    sets = []
    dev_labeled = [s for s in subjects.dev if dimension in corpus.recording(s).labels]
    if dev_labeled:
        sets.append(eval_set("dev", dev_labeled))
    if subjects.validation:
        sets.append(eval_set("val", subjects.validation))
    elif holdout is not None:
        data, times, gold = holdout
        sets.append(EvalSet("val", [inputs(data)], [times[::every]], [gold[::every]]))
    selection_set = "dev" if training.selection == "dev" else "val"
    if selection_set not in {e.name for e in sets}:
        raise fail(training.corpus, f"no labelled {training.selection} data for model selection")
    held = subjects.validation or ([f"{subjects.train[-1]} (last 20% of frames)"] if holdout is not None else [])
    return (
        sets,
        selection_set,
        {"train_subjects": subjects.train, "dev_subjects": dev_labeled, "validation_subjects": held},
    )


# ----------------------------------------------------------------------------- train-cnn


@dataclass
class CNNData:
    batches: CNNBatches
    shift: float
    selection_set: str
    chip_size: int
    alignment: dict  # the face files' common alignment settings (the model file records them)
    info: dict  # run.json entries: subjects, frames, data path, label variance, faces, label shift
    first_file: Path
    frames: dict  # {subject: SubjectFrames} as loaded: the eval sets' inputs are views of them


def cnn_training_data(training: CNNTraining, device) -> CNNData:
    """The CNN's training chips and labels (in memory, or streamed from the face files above the memory
    budget), its eval sets and the label shift."""
    from ..faces.facefile import common_alignment_settings
    from .recordings import load_faces
    from .stream import choose_data_path, streamed_frames

    corpus = open_corpus(training.corpus)
    subjects = split_subjects(corpus, training.selection, training.corpus, training.faces)
    face_files = {f.stem: f for f in training.faces}
    used = subjects.train + subjects.validation + subjects.dev
    # every face file the CNN sees must be aligned alike: the model file records one way to align new videos
    alignment = common_alignment_settings([face_files[s] for s in used])
    # The in-memory path loads every given face file's chips (and the training ones onto the device); above
    # the budget, or with --stream, the chips stay in the files and stream (affectflow.learning.stream).
    loaded = {s: face_files[s] for s in used}
    streamed, data_path = choose_data_path(list(loaded.values()), training.stream, training.memory_budget_gb)
    every, rows = max(1, training.eval_stride), training.stream_chunk_rows
    faces = streamed_frames(loaded, every, rows) if streamed else {s: load_faces(p, s) for s, p in loaded.items()}
    shift, shift_fit = resolve_label_shift(
        training.label_shift, lambda: _fit_shift_on_faces(training, corpus, subjects, faces, face_files, streamed)
    )
    batches, holdout = _cnn_batches(training, corpus, subjects, faces, face_files, streamed, shift, device)
    train_frames = len(batches.labels)
    if train_frames == 0:
        raise fail(face_files[subjects.train[0]], "no training frame with a face and a label")
    data_path["train_chips_bytes"] = int(train_frames * alignment["chip_size"] ** 2)
    if batches.stream is not None:
        data_path["stream"] = batches.stream.describe()
    batches.eval_sets, selection_set, subject_info = eval_sets(
        training, corpus, subjects, faces, holdout, device, frame_wise=True
    )
    info = {
        **subject_info,
        "train_frames": int(train_frames),
        "data_path": data_path,
        "train_label_variance": float(batches.labels.float().var(unbiased=False)),
        "faces": alignment,
        **label_info(shift, shift_fit),
    }
    first = face_files[subjects.train[0]]
    return CNNData(batches, shift, selection_set, alignment["chip_size"], alignment, info, first, faces)


def _fit_shift_on_faces(training, corpus, subjects, faces, face_files, streamed) -> dict:
    """The shift fit on a bounded set of training frames (shift_fit_rows); labels by frame count lines on
    every frame's time, so the times stay whole."""
    from .stream import found_descriptors

    rows = training.stream_chunk_rows
    taken = shift_fit_rows([faces[s].found for s in subjects.train])
    return fit_label_shift(
        [
            found_descriptors(face_files[s], _mask(len(faces[s].time), t), rows)
            if streamed
            else descriptor_from_chips(faces[s].data[t].astype(np.float32) / 255)
            for s, t in zip(subjects.train, taken)
        ],
        [faces[s].time for s in subjects.train],
        [corpus.recording(s) for s in subjects.train],
        training.dimension,
        rows=taken,
    )


def _cnn_batches(training, corpus, subjects, faces, face_files, streamed, shift, device):
    """(CNNBatches without eval sets, holdout): every training subject's found and labelled frames (each
    frame_stride-th), and a single training subject's last 20% held out when selecting on validation."""
    from .stream import ChunkedRecording, TrainingStream

    every, rows = max(1, training.eval_stride), training.stream_chunk_rows
    xs, ys, indices = [], [], []
    holdout = None
    for s in subjects.train:
        f = faces[s]
        labels = frame_labels(corpus.recording(s), training.dimension, f.time, shift)
        keep = f.found & np.isfinite(labels)
        if training.selection == "validation" and not subjects.validation and s == subjects.train[-1]:
            cut = int(0.8 * len(f.time))  # single training subject: its last 20% of frames validate
            data = ChunkedRecording(face_files[s], cut, every, rows) if streamed else f.data[cut:]
            holdout = (data, f.time[cut:], frame_labels(corpus.recording(s), training.dimension, f.time)[cut:])
            keep[cut:] = False
        indices.append(np.flatnonzero(keep)[:: max(1, training.frame_stride)])
        xs.append(None if streamed else f.data[indices[-1]])
        ys.append(labels[indices[-1]].astype(np.float32))
    train_y = torch.from_numpy(np.concatenate(ys))
    stream, train_x = None, None
    if streamed:  # the labels only stay in memory: variance and count
        paths = [face_files[s] for s in subjects.train]
        stream = TrainingStream(paths, indices, ys, training.batch_size, rows, training.stream_buffer_chunks)
    else:
        train_x, train_y = torch.from_numpy(np.concatenate(xs)).to(device), train_y.to(device)
    batches = CNNBatches(train_x, train_y, [], training.augment, training.normalization, stream)
    return batches, holdout


# ----------------------------------------------------------------------------- train-rnn


@dataclass
class RNNData:
    windows: RNNWindows
    cnn: object  # the CNN's affectflow.modelfile.ModelFile (its settings and weights go into the RNN's file)
    shift: float
    selection_set: str
    prior: dict  # the training set's raw feature statistics (the causal standardization's start)
    width: int
    info: dict

    def standardization(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training features' mean and std (the model's input standardization for feature_norm 'train')."""
        stacked = torch.cat(self.windows.features)
        return stacked.mean(0), stacked.std(0)


def rnn_training_data(training: RNNTraining, device) -> RNNData:
    """The RNN's training features and labels (RNN inputs under training.feature_norm), its eval sets and
    the label shift."""
    from ..modelfile import load_model_file, model_file
    from ..nets.rnn_inputs import feature_prior, rnn_inputs
    from .recordings import load_features

    cnn = load_model_file(model_file(training.cnn))
    if cnn.kind != "cnn":
        raise fail(cnn.path, "an RNN is trained on the features of a CNN model file, not of an RNN")
    corpus = open_corpus(training.corpus)
    subjects = split_subjects(corpus, training.selection, training.corpus, training.features)
    feature_files = {f.stem: f for f in training.features}
    used = subjects.train + subjects.validation + subjects.dev
    feats = {s: load_features(feature_files[s], s, cnn.settings.weights_sha256) for s in used}
    # the causal normalization starts from the training subjects' raw feature statistics (no labels)
    prior = feature_prior([feats[s].data for s in subjects.train])
    for frames in feats.values():
        frames.data = rnn_inputs(frames.data, training.feature_norm, prior)
    widths = {f.data.shape[1] for f in feats.values()}
    if len(widths) != 1:
        raise fail(training.features[0], f"feature files have different widths {sorted(widths)}")
    shift, shift_fit = resolve_label_shift(
        training.label_shift, lambda: _fit_shift_on_features(training, corpus, subjects, feats)
    )
    features, labels, holdout = _rnn_sequences(training, corpus, subjects, feats, shift)
    sets, selection_set, subject_info = eval_sets(training, corpus, subjects, feats, holdout, device)
    windows = RNNWindows(
        features,
        labels,
        sets,
        training.window,
        training.window_stride,
        max(1, training.eval_stride),
        (cnn.config, cnn.state_dict),
    )
    info = {
        **subject_info,
        "cnn_model": str(cnn.path.resolve()),
        "cnn_sha256": cnn.settings.weights_sha256,
        "feature_prior": prior,
        "train_label_variance": float(np.nanvar(torch.cat(labels).numpy())),
        **label_info(shift, shift_fit),
    }
    return RNNData(windows, cnn, shift, selection_set, prior, widths.pop(), info)


def _mask(length: int, rows: np.ndarray) -> np.ndarray:
    """A boolean mask of `length` frames, True at `rows`."""
    mask = np.zeros(length, bool)
    mask[rows] = True
    return mask


def _fit_shift_on_features(training, corpus, subjects, feats) -> dict:
    """The shift fit on a bounded set of training frames (shift_fit_rows) of the features."""
    taken = shift_fit_rows([np.ones(len(feats[s].time), bool) for s in subjects.train])
    data = [feats[s].data[t] for s, t in zip(subjects.train, taken)]
    recordings = [corpus.recording(s) for s in subjects.train]
    return fit_label_shift(data, [feats[s].time for s in subjects.train], recordings, training.dimension, rows=taken)


def _rnn_sequences(training, corpus, subjects, feats, shift):
    """(features, labels, holdout): each training subject's whole sequence at the label shift; a single
    training subject's last 20% held out when selecting on validation."""
    features, labels, holdout = [], [], None
    for s in subjects.train:
        f = feats[s]
        lab = frame_labels(corpus.recording(s), training.dimension, f.time, shift)
        if training.selection == "validation" and not subjects.validation and s == subjects.train[-1]:
            cut = int(0.8 * len(f.time))
            holdout = (f.data[cut:], f.time[cut:], frame_labels(corpus.recording(s), training.dimension, f.time)[cut:])
            f_data, lab = f.data[:cut], lab[:cut]
        else:
            f_data = f.data
        features.append(torch.from_numpy(np.ascontiguousarray(f_data)))
        labels.append(torch.from_numpy(lab.astype(np.float32)))
    return features, labels, holdout
