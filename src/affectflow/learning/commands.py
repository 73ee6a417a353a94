"""`affectflow train-cnn` and `affectflow train-rnn` (docs/design.md, section 1).

Defaults are the paper's: CNN 64/128/256 + FC 300 with the authors' initialization,
SGD batch 128, momentum 0.9, weight decay 1e-5, constant lr 0.01, MSE, model choice
by CCC. The CNN trains on the raw chips of the face files: every batch is scaled,
augmented (variants A/AD) and normalized on the device (--normalization), and
extraction normalizes with the same code. The RNN uses the same SGD settings with
gradient-norm clipping at 1.0 (needed for ReLU RNNs, kept for all cells so that
configs compare); its input features are standardized causally per recording by
default (--feature-norm, see affectflow.nets.rnn_inputs). Smaller CNNs (--channels, --fc),
frame subsampling (--frame-stride) and a time budget (--max-minutes) exist for the
2-core demo. Both commands take the files they train on from the command line (the
workflow's inputs); the corpus gives each subject's partition and labels. Each writes a
self-contained model file (affectflow.inference.pipeline): an RNN's embeds the CNN it was trained on.

Each command reads top to bottom: its settings (affectflow.learning.settings) built once, the data
assembled (affectflow.learning.data), the network, then the loop (affectflow.learning.loop).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..contracts import (
    CNN_VARIANTS,
    DIMENSIONS,
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
from ..errors import fail
from ..io import OutputPath
from ..options import add_device, add_quiet, positive_int
from .settings import CNN_RUN_FIELDS, RNN_RUN_FIELDS, CNNTraining, RNNTraining

CNN, RNN = CNNTraining, RNNTraining  # the parsers' defaults are the settings' own


def add_commands(subparsers) -> None:
    _cnn_parser(subparsers)
    _rnn_parser(subparsers)


def _cnn_parser(subparsers) -> None:
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
    p.add_argument("--channels", default=CNN.channels, help="conv channels (paper: 64,128,256)")
    p.add_argument("--fc", type=positive_int, default=CNN.fc, help="feature layer width (paper: 300)")
    p.add_argument(
        "--frame-stride", type=positive_int, default=CNN.frame_stride, help="train on every k-th found frame"
    )
    p.add_argument(
        "--normalization",
        choices=NORMALIZATIONS,
        default=CNN.normalization,
        help="chip normalization after augmentation, on the device (local-mean: the authors' "
        "Normer3 as it ran; see affectflow.faces.normalize)",
    )
    p.add_argument("--clip-norm", type=float, default=CNN.clip_norm, help="gradient-norm clipping (0, the paper: none)")
    p.add_argument(
        "--init",
        default=CNN.init,
        choices=INITS,
        help="weight initialization: 'paper' (the authors': k ~ U(0.2, 1.2) per model), 'he' (k = sqrt 2) "
        "or 'pytorch' (PyTorch's default); see affectflow.nets.networks",
    )
    p.add_argument(
        "--stream",
        action="store_true",
        help="stream the training chips from the face files through a bounded shuffle buffer; "
        "chosen automatically when the face files' chips exceed --memory-budget-gb",
    )
    p.add_argument("--memory-budget-gb", type=float, default=CNN.memory_budget_gb, help="(default %(default)s)")
    p.add_argument(
        "--stream-chunk-rows", type=positive_int, default=CNN.stream_chunk_rows, help="frames per contiguous read"
    )
    p.add_argument(
        "--stream-buffer-chunks", type=positive_int, default=CNN.stream_buffer_chunks, help="chunks per shuffle buffer"
    )
    _common_training(p, CNN)
    p.set_defaults(handler=_train_cnn_command)


def _rnn_parser(subparsers) -> None:
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
    p.add_argument("--cell", choices=RNN_CELLS, default=RNN.cell)
    p.add_argument("--nonlinearity", choices=NONLINEARITIES, default=RNN.nonlinearity)
    p.add_argument("--hidden", type=positive_int, default=RNN.hidden)
    p.add_argument("--layers", type=int, choices=RNN_LAYERS, default=RNN.layers)
    p.add_argument(
        "--recurrent-init",
        choices=RECURRENT_INITS,
        default=RNN.recurrent_init,
        help="Elman recurrent weights: PyTorch's default or the identity (IRNN, Le et al. 2015)",
    )
    p.add_argument("--window", type=positive_int, default=RNN.window)
    p.add_argument(
        "--window-stride", type=positive_int, default=RNN.window_stride, help="training windows start every k frames"
    )
    p.add_argument("--loss", choices=LOSSES, default=RNN.loss)
    p.add_argument(
        "--feature-norm",
        choices=FEATURE_NORMS,
        default=RNN.feature_norm,
        help="RNN inputs: causal running statistics per recording (default), training-set "
        "statistics, or whole-recording statistics (transductive: uses frames after t)",
    )
    p.add_argument("--clip-norm", type=float, default=RNN.clip_norm, help="gradient-norm clipping (0 disables)")
    _common_training(p, RNN)
    p.set_defaults(handler=_train_rnn_command)


def _common_training(p: argparse.ArgumentParser, stage: type) -> None:
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--out", required=True, type=OutputPath, help="run dir")
    p.add_argument("--epochs", type=positive_int, default=stage.epochs)
    p.add_argument("--dimension", choices=DIMENSIONS, default=stage.dimension)
    p.add_argument(
        "--selection",
        choices=SELECTIONS,
        default=stage.selection,
        help="model choice by CCC on dev (as the paper) or on held-out training subjects",
    )
    p.add_argument(
        "--label-shift", default=stage.label_shift, help="annotation delay in seconds, or 'auto' (fit on train)"
    )
    p.add_argument("--batch-size", type=positive_int, default=stage.batch_size)
    p.add_argument("--lr", type=float, default=stage.lr)
    p.add_argument(
        "--max-minutes", type=float, default=stage.max_minutes, help="stop after the epoch passing this budget"
    )
    p.add_argument(
        "--eval-stride",
        type=positive_int,
        default=stage.eval_stride,
        help="score every k-th frame for per-epoch model selection (evaluate scores all)",
    )
    add_device(p)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    add_quiet(p)
    p.add_argument("--stop-after-epochs", type=int, default=None, help=argparse.SUPPRESS)  # kill simulation


def _train_cnn_command(args) -> int:
    from ..modelfile import FaceSettings, PipelineSettings
    from ..nets.networks import CNNConfig, FaceCNN
    from ..nets.tensors import resolve_device
    from .data import cnn_training_data, run_info
    from .loop import RunSetup, fit_cnn
    from .seeding import seed_everything

    training = CNNTraining.from_args(args)
    device = resolve_device(training.device)
    seed_everything(training.seed, device)
    channels = training.conv_channels()
    data = cnn_training_data(training, device)
    try:
        config = CNNConfig(
            chip_size=data.chip_size, channels=channels, fc=training.fc, dropout=training.dropout, init=training.init
        )
    except ValueError as error:
        raise fail(data.first_file, str(error)) from None
    model = FaceCNN(config)
    info = run_info(
        training,
        CNN_RUN_FIELDS,
        {**data.info, "augment": training.augment, "dropout": training.dropout, "init_k": model.init_k},
        device,
    )
    pipeline = PipelineSettings(
        dimension=training.dimension,
        label_shift=data.shift,
        normalization=training.normalization,
        faces=FaceSettings.from_dict(data.alignment),
        weights_sha256="",  # set when the model is saved
        affectflow_version=info["affectflow_version"],
    )
    settings = training.loop_settings(data.shift, data.selection_set)
    fit_cnn(model, data.batches, settings, RunSetup(training.out, training.resume, info, device, pipeline))
    return 0


def _train_rnn_command(args) -> int:
    from dataclasses import replace

    from ..nets.networks import FrameRNN, RNNConfig
    from ..nets.tensors import resolve_device
    from .data import rnn_training_data, run_info
    from .loop import RunSetup, fit_rnn
    from .seeding import seed_everything

    training = RNNTraining.from_args(args)
    device = resolve_device(training.device)
    seed_everything(training.seed, device)
    data = rnn_training_data(training, device)
    model = FrameRNN(
        RNNConfig(
            input_size=data.width,
            cell=training.cell,
            nonlinearity=training.nonlinearity,
            hidden=training.hidden,
            layers=training.layers,
            recurrent_init=training.recurrent_init,
        )
    )
    model.set_standardization(*data.standardization())
    info = run_info(training, RNN_RUN_FIELDS, {**data.info, "hidden_sizes": model.config.hidden_sizes}, device)
    pipeline = replace(
        data.cnn.settings,
        dimension=training.dimension,
        label_shift=data.shift,
        weights_sha256="",  # set when the model is saved
        affectflow_version=info["affectflow_version"],
        window=training.window,
        feature_norm=training.feature_norm,
        feature_prior=data.prior,
        cnn_sha256=data.cnn.settings.weights_sha256,
    )
    settings = training.loop_settings(data.shift, data.selection_set, loss=training.loss)
    fit_rnn(model, data.windows, settings, RunSetup(training.out, training.resume, info, device, pipeline))
    return 0
