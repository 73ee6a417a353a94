"""`affectflow train-cnn` and `affectflow train-rnn` (docs/design.md, section 1).

Defaults are the paper's: CNN 64/128/256 + FC 300 with the authors' initialization,
SGD batch 128, momentum 0.9, weight decay 1e-5, constant lr 0.01, MSE, model choice
by CCC. The CNN trains on the raw chips of the face files: every batch is scaled,
augmented (variants A/AD) and normalized on the device (--normalization), and
extraction normalizes with the same code. The RNN uses the same SGD settings with
gradient-norm clipping at 1.0 (needed for ReLU RNNs, kept for all cells so that
configs compare); its input features are standardized causally per recording by
default (--feature-norm, see affectflow.dataset). Smaller CNNs (--channels, --fc),
frame subsampling (--frame-stride) and a time budget (--max-minutes) exist for the
2-core demo. Both commands take the files they train on from the command line (the
workflow's inputs); the corpus gives each subject's partition and labels. Each writes a
self-contained model file (affectflow.inference): an RNN's embeds the CNN it was trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .contracts import (
    CNN_VARIANTS,
    DEFAULT_FEATURE_NORM,
    DEFAULT_NORMALIZATION,
    DEVICES,
    FEATURE_NORMS,
    INITS,
    LOSSES,
    NONLINEARITIES,
    NORMALIZATIONS,
    RECURRENT_INITS,
    RNN_CELLS,
    RNN_LAYERS,
    SELECTIONS,
)
from .io import OutputPath

# affectflow.stream's defaults, repeated here so that building the parser imports no numpy (test_rules
# holds them equal)
DEFAULT_MEMORY_BUDGET_GB = 4.0
STREAM_CHUNK_ROWS = 1024
STREAM_BUFFER_CHUNKS = 16

# The run's settings that run.json records, by name, per command: what --resume compares
# (trainer.RESUME_MUST_MATCH) and what the tables read. Renaming a flag breaks the test that holds
# these names equal to the parser's destinations, not silently what a resume compares.
CNN_RUN_FIELDS = (
    "variant",
    "seed",
    "epochs",
    "lr",
    "batch_size",
    "frame_stride",
    "normalization",
    "clip_norm",
    "init",
    "channels",
    "fc",
    "dimension",
    "selection",
    "eval_stride",
    "max_minutes",
    "device",
    "corpus",
    "faces",
    "out",
    "stream",
    "memory_budget_gb",
    "stream_chunk_rows",
    "stream_buffer_chunks",
)
RNN_RUN_FIELDS = (
    "seed",
    "epochs",
    "lr",
    "batch_size",
    "cell",
    "nonlinearity",
    "hidden",
    "layers",
    "recurrent_init",
    "window",
    "window_stride",
    "loss",
    "feature_norm",
    "clip_norm",
    "dimension",
    "selection",
    "eval_stride",
    "max_minutes",
    "device",
    "corpus",
    "cnn",
    "features",
    "out",
)


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "train-cnn",
        help="train the single-frame CNN on the training subjects' faces",
        description="Train the paper's CNN (variants plain, D, A, AD) on normalized face "
        "chips; writes RUN_DIR/model.safetensors, history.tsv, run.json, checkpoint.pt.",
    )
    p.add_argument("--corpus", required=True, type=Path)
    p.add_argument(
        "--faces",
        required=True,
        type=Path,
        nargs="+",
        help="face files {subject}.h5 of the training and dev subjects to use",
    )
    p.add_argument("--variant", required=True, choices=sorted(CNN_VARIANTS))
    p.add_argument("--channels", default="64,128,256", help="conv channels (paper: 64,128,256)")
    p.add_argument("--fc", type=int, default=300, help="feature layer width (paper: 300)")
    p.add_argument("--frame-stride", type=int, default=1, help="train on every k-th found frame")
    p.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default=DEFAULT_NORMALIZATION,
        help="chip normalization after augmentation, on the device (local-mean: the authors' "
        "Normer3 as it ran; see affectflow.normalize)",
    )
    p.add_argument("--clip-norm", type=float, default=0.0, help="gradient-norm clipping (0, the paper: none)")
    p.add_argument(
        "--init",
        default="paper",
        choices=INITS,
        help="weight initialization: 'paper' (the authors': k ~ U(0.2, 1.2) per model), 'he' (k = sqrt 2) "
        "or 'pytorch' (PyTorch's default); see affectflow.models",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="stream the training chips from the face files through a bounded shuffle buffer (affectflow.stream); "
        "chosen automatically when the face files' chips exceed --memory-budget-gb",
    )
    p.add_argument("--memory-budget-gb", type=float, default=DEFAULT_MEMORY_BUDGET_GB, help="(default %(default)s)")
    p.add_argument("--stream-chunk-rows", type=int, default=STREAM_CHUNK_ROWS, help="frames per contiguous read")
    p.add_argument("--stream-buffer-chunks", type=int, default=STREAM_BUFFER_CHUNKS, help="chunks per shuffle buffer")
    _common_training(p, epochs=30)
    p.set_defaults(handler=_train_cnn_command)

    p = subparsers.add_parser(
        "train-rnn",
        help="train the RNN on frozen CNN features",
        description="Train an RNN over windows of W frames of CNN features "
        "(a regression output at every step, the last one is the prediction).",
    )
    p.add_argument("--corpus", required=True, type=Path)
    p.add_argument(
        "--cnn",
        required=True,
        type=Path,
        help="the CNN model file that extracted the features (embedded in the RNN's model file)",
    )
    p.add_argument(
        "--features",
        required=True,
        type=Path,
        nargs="+",
        help="feature files {subject}.h5 of the training and dev subjects to use",
    )
    p.add_argument("--cell", choices=RNN_CELLS, default="rnn")
    p.add_argument("--nonlinearity", choices=NONLINEARITIES, default="tanh")
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--layers", type=int, choices=RNN_LAYERS, default=1)
    p.add_argument(
        "--recurrent-init",
        choices=RECURRENT_INITS,
        default="pytorch",
        help="Elman recurrent weights: PyTorch's default or the identity (IRNN, Le et al. 2015)",
    )
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--window-stride", type=int, default=1, help="training windows start every k frames")
    p.add_argument("--loss", choices=LOSSES, default="mse")
    p.add_argument(
        "--feature-norm",
        choices=FEATURE_NORMS,
        default=DEFAULT_FEATURE_NORM,
        help="RNN inputs: causal running statistics per recording (default), training-set "
        "statistics, or whole-recording statistics (transductive: uses frames after t)",
    )
    p.add_argument("--clip-norm", type=float, default=1.0, help="gradient-norm clipping (0 disables)")
    _common_training(p, epochs=30)
    p.set_defaults(handler=_train_rnn_command)


def _common_training(p: argparse.ArgumentParser, epochs: int) -> None:
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out", required=True, type=OutputPath, help="run dir")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--dimension", default="valence")
    p.add_argument(
        "--selection",
        choices=SELECTIONS,
        default="dev",
        help="model choice by CCC on dev (as the paper) or on held-out training subjects",
    )
    p.add_argument("--label-shift", default="0", help="annotation delay in seconds, or 'auto' (fit on train)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--max-minutes", type=float, default=None, help="stop after the epoch passing this budget")
    p.add_argument(
        "--eval-stride",
        type=int,
        default=1,
        help="score every k-th frame for per-epoch model selection (evaluate scores all)",
    )
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS)  # kill simulation


# ----------------------------------------------------------------------------- shared data plumbing


def _splits(corpus, selection: str, corpus_path: Path, files: list[Path]):
    """(train subjects, dev subjects, validation subjects) of the given files ({subject}.h5), in
    corpus order. Validation = last training subject when there are >= 2, else none (the caller
    then holds out the last 20% of frames)."""
    from .errors import fail

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
    return train, dev, validation


def _resolve_shift(text: str, fit) -> tuple[float, dict | None]:
    from .errors import AffectflowError

    if text == "auto":
        result = fit()
        return result["shift"], result
    try:
        return float(text), None
    except ValueError:
        raise AffectflowError(f"--label-shift: expected seconds or 'auto', got {text!r}") from None


def _label_info(shift: float, fit: dict | None) -> dict:
    return {
        "label_shift": shift,
        "label_shift_mode": "auto (fit on training subjects)" if fit else "fixed",
        "label_shift_fit": fit,
    }


def _run_info(args, fields: tuple[str, ...], extra: dict) -> dict:
    """run.json: the named fields of the command line, as plain values, then `extra`."""
    from . import __version__
    from .dataset import FILL_POLICY

    def plain(value):
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    settings = {name: plain(getattr(args, name)) for name in fields}
    settings.update({"fill_policy": FILL_POLICY, "affectflow_version": __version__})
    settings.update(extra)
    return settings


def _eval_sets(args, corpus, train, dev, validation, frames, holdout, device, every: int = 1, frame_wise: bool = False):
    """The recordings scored each epoch: dev (if labelled) and the validation split.

    `frames[subject]` has .data (model inputs on every frame) and .time; `holdout` = (data,
    time, gold) of a single training subject's last 20% of frames. Every `every`-th frame's
    time and gold are kept, and its input too when the model is `frame_wise` (the CNN; the
    RNN's windows need every frame). Returns (eval sets, name of the selection set, run.json entries).
    """
    import numpy as np
    import torch

    from .dataset import frame_labels
    from .errors import fail
    from .trainer import EvalSet

    input_every = every if frame_wise else 1

    def inputs(data):
        if isinstance(data, np.ndarray):
            return torch.from_numpy(data[::input_every]).to(device)
        return data  # read chunk by chunk (affectflow.stream.ChunkedRecording), already every `every`-th frame

    def eval_set(name, subjects):
        return EvalSet(
            name,
            [inputs(frames[s].data) for s in subjects],
            [frames[s].time[::every] for s in subjects],
            [frame_labels(corpus.recording(s), args.dimension, frames[s].time)[::every] for s in subjects],
        )

    sets = []
    dev_labeled = [s for s in dev if args.dimension in corpus.recording(s).labels]
    if dev_labeled:
        sets.append(eval_set("dev", dev_labeled))
    if validation:
        sets.append(eval_set("val", validation))
    elif holdout is not None:
        data, times, gold = holdout
        sets.append(EvalSet("val", [inputs(data)], [times[::every]], [gold[::every]]))
    selection_set = "dev" if args.selection == "dev" else "val"
    if selection_set not in {e.name for e in sets}:
        raise fail(args.corpus, f"no labelled {args.selection} data for model selection")
    held = validation or ([f"{train[-1]} (last 20% of frames)"] if holdout is not None else [])
    return sets, selection_set, {"train_subjects": train, "dev_subjects": dev_labeled, "validation_subjects": held}


# ----------------------------------------------------------------------------- train-cnn


def _train_cnn_command(args) -> int:
    import numpy as np
    import torch

    from .corpus import open_corpus
    from .dataset import descriptor_from_chips, fit_label_shift, frame_labels, load_faces
    from .errors import AffectflowError, fail
    from .faces import common_alignment_settings
    from .modelfile import FaceSettings, PipelineSettings
    from .models import CNNConfig, FaceCNN
    from .seeding import seed_everything
    from .stream import ChunkedRecording, TrainingStream, choose_data_path, found_descriptors, streamed_frames
    from .tensors import resolve_device
    from .trainer import TrainSettings, fit_cnn

    device = resolve_device(args.device)
    seed_everything(args.seed, device)
    augment, dropout = CNN_VARIANTS[args.variant]
    try:
        channels = tuple(int(c) for c in args.channels.split(","))
    except ValueError:
        raise AffectflowError(f"--channels: expected three integers like 64,128,256, got {args.channels!r}") from None

    corpus = open_corpus(args.corpus)
    train, dev, validation = _splits(corpus, args.selection, args.corpus, args.faces)
    face_files = {f.stem: f for f in args.faces}
    # every face file the CNN sees must be aligned alike: the model file records one way to align new videos
    alignment = common_alignment_settings([face_files[s] for s in train + validation + dev])
    chip_size = alignment["chip_size"]
    # The in-memory path loads every given face file's chips (and the training ones onto the device); above
    # the budget, or with --stream, the chips stay in the files and stream (affectflow.stream).
    loaded = {s: face_files[s] for s in train + validation + dev}
    streamed, data_path = choose_data_path(list(loaded.values()), args.stream, args.memory_budget_gb)
    every, rows = max(1, args.eval_stride), args.stream_chunk_rows
    faces = streamed_frames(loaded, every, rows) if streamed else {s: load_faces(p, s) for s, p in loaded.items()}

    def fit():
        return fit_label_shift(
            [
                found_descriptors(face_files[s], faces[s].found, rows)
                if streamed
                else descriptor_from_chips(faces[s].data[faces[s].found].astype(np.float32) / 255)
                for s in train
            ],
            [faces[s].time[faces[s].found] for s in train],
            [corpus.recording(s) for s in train],
            args.dimension,
        )

    shift, shift_fit = _resolve_shift(args.label_shift, fit)

    xs, ys, indices = [], [], []
    holdout = None
    for s in train:
        f = faces[s]
        labels = frame_labels(corpus.recording(s), args.dimension, f.time, shift)
        keep = f.found & np.isfinite(labels)
        if args.selection == "validation" and not validation and s == train[-1]:
            cut = int(0.8 * len(f.time))  # single training subject: its last 20% of frames validate
            data = ChunkedRecording(face_files[s], cut, every, rows) if streamed else f.data[cut:]
            holdout = (data, f.time[cut:], frame_labels(corpus.recording(s), args.dimension, f.time[cut:]))
            keep[cut:] = False
        indices.append(np.flatnonzero(keep)[:: max(1, args.frame_stride)])
        xs.append(None if streamed else f.data[indices[-1]])
        ys.append(labels[indices[-1]].astype(np.float32))
    train_y = torch.from_numpy(np.concatenate(ys))
    stream, train_x = None, None
    if streamed:  # the labels only stay in memory: variance and count
        paths = [face_files[s] for s in train]
        stream = TrainingStream(paths, indices, ys, args.batch_size, rows, args.stream_buffer_chunks)
        data_path["stream"] = stream.describe()
    else:
        train_x, train_y = torch.from_numpy(np.concatenate(xs)).to(device), train_y.to(device)
    train_frames = len(train_y)
    if train_frames == 0:
        raise fail(face_files[train[0]], "no training frame with a face and a label")
    data_path["train_chips_bytes"] = int(train_frames * chip_size * chip_size)

    eval_sets, selection_set, subject_info = _eval_sets(
        args, corpus, train, dev, validation, faces, holdout, device, max(1, args.eval_stride), frame_wise=True
    )
    try:
        config = CNNConfig(chip_size=chip_size, channels=channels, fc=args.fc, dropout=dropout, init=args.init)
    except ValueError as error:
        raise fail(face_files[train[0]], str(error)) from None
    model = FaceCNN(config)
    info = _run_info(
        args,
        CNN_RUN_FIELDS,
        {
            **subject_info,
            "augment": augment,
            "dropout": dropout,
            "train_frames": int(train_frames),
            "data_path": data_path,
            "device": str(device),
            "init_k": model.init_k,
            "train_label_variance": float(train_y.float().var(unbiased=False)),
            "faces": alignment,
            **_label_info(shift, shift_fit),
        },
    )
    pipeline = PipelineSettings(
        dimension=args.dimension,
        label_shift=shift,
        normalization=args.normalization,
        faces=FaceSettings.from_dict(alignment),
        weights_sha256="",  # set when the model is saved
        affectflow_version=info["affectflow_version"],
    )
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        label_shift=shift,
        selection=selection_set,
        max_minutes=args.max_minutes,
        clip_norm=args.clip_norm or None,
        stop_after_epochs=args.stop_after_epochs,
        progress=not args.quiet,
    )
    fit_cnn(
        model,
        train_x,
        None if streamed else train_y,
        eval_sets,
        settings,
        args.out,
        augment,
        args.normalization,
        args.resume,
        info,
        device,
        pipeline,
        stream=stream,
    )
    return 0


# ----------------------------------------------------------------------------- train-rnn


def _train_rnn_command(args) -> int:
    from dataclasses import replace

    import numpy as np
    import torch

    from .corpus import open_corpus
    from .dataset import feature_prior, fit_label_shift, frame_labels, load_features, rnn_inputs
    from .errors import AffectflowError, fail
    from .modelfile import load_model_file, model_file
    from .models import FrameRNN, RNNConfig
    from .seeding import seed_everything
    from .tensors import resolve_device
    from .trainer import TrainSettings, fit_rnn

    device = resolve_device(args.device)
    seed_everything(args.seed, device)
    if args.window < 1:
        raise AffectflowError("--window must be >= 1")
    cnn = load_model_file(model_file(args.cnn))
    if cnn.kind != "cnn":
        raise fail(cnn.path, "an RNN is trained on the features of a CNN model file, not of an RNN")
    cnn_sha256 = cnn.settings.weights_sha256
    corpus = open_corpus(args.corpus)
    train, dev, validation = _splits(corpus, args.selection, args.corpus, args.features)
    feature_files = {f.stem: f for f in args.features}
    feats = {s: load_features(feature_files[s], s, cnn_sha256) for s in train + validation + dev}
    # the causal normalization starts from the training subjects' raw feature statistics (no labels)
    prior = feature_prior([feats[s].data for s in train])
    for frames in feats.values():
        frames.data = rnn_inputs(frames.data, args.feature_norm, prior)
    dims = {f.data.shape[1] for f in feats.values()}
    if len(dims) != 1:
        raise fail(args.features[0], f"feature files have different widths {sorted(dims)}")

    def fit():
        return fit_label_shift(
            [feats[s].data for s in train],
            [feats[s].time for s in train],
            [corpus.recording(s) for s in train],
            args.dimension,
        )

    shift, shift_fit = _resolve_shift(args.label_shift, fit)
    every = max(1, args.eval_stride)
    features, labels, holdout = [], [], None
    for s in train:
        f = feats[s]
        lab = frame_labels(corpus.recording(s), args.dimension, f.time, shift)
        if args.selection == "validation" and not validation and s == train[-1]:
            cut = int(0.8 * len(f.time))
            holdout = (f.data[cut:], f.time[cut:], frame_labels(corpus.recording(s), args.dimension, f.time[cut:]))
            f_data, lab = f.data[:cut], lab[:cut]
        else:
            f_data = f.data
        features.append(torch.from_numpy(np.ascontiguousarray(f_data)))
        labels.append(torch.from_numpy(lab.astype(np.float32)))

    eval_sets, selection_set, subject_info = _eval_sets(
        args, corpus, train, dev, validation, feats, holdout, device, every
    )
    model = FrameRNN(
        RNNConfig(
            input_size=dims.pop(),
            cell=args.cell,
            nonlinearity=args.nonlinearity,
            hidden=args.hidden,
            layers=args.layers,
            recurrent_init=args.recurrent_init,
        )
    )
    stacked = torch.cat(features)
    model.set_standardization(stacked.mean(0), stacked.std(0))
    info = _run_info(
        args,
        RNN_RUN_FIELDS,
        {
            **subject_info,
            "cnn_model": str(cnn.path.resolve()),
            "cnn_sha256": cnn_sha256,
            "hidden_sizes": model.config.hidden_sizes,
            "device": str(device),
            "feature_prior": prior,
            "train_label_variance": float(np.nanvar(torch.cat(labels).numpy())),
            **_label_info(shift, shift_fit),
        },
    )
    pipeline = replace(
        cnn.settings,
        dimension=args.dimension,
        label_shift=shift,
        weights_sha256="",  # set when the model is saved
        affectflow_version=info["affectflow_version"],
        window=args.window,
        feature_norm=args.feature_norm,
        feature_prior=prior,
        cnn_sha256=cnn_sha256,
    )
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        label_shift=shift,
        selection=selection_set,
        max_minutes=args.max_minutes,
        loss=args.loss,
        clip_norm=args.clip_norm or None,
        stop_after_epochs=args.stop_after_epochs,
        progress=not args.quiet,
    )
    fit_rnn(
        model,
        features,
        labels,
        eval_sets,
        settings,
        args.out,
        args.window,
        args.window_stride,
        args.resume,
        info,
        device,
        pipeline,
        (cnn.config, cnn.state_dict),
        eval_stride=every,
    )
    return 0
