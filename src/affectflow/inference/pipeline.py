"""The one inference path: a model file and face chips (or feature files) -> per-frame predictions.

`evaluate`, `predict`, `annotate` and `extract` (and so the workflow) all go through
:class:`Pipeline`. A model file (affectflow.modelfile owns its format) is self-contained:
besides its weights it carries everything inference needs (:class:`affectflow.modelfile.PipelineSettings`);
an RNN's embeds the frozen CNN it was trained on, so a copied RNN model file predicts on its own.

Raw predictions are per frame and NOT placed in time: the prediction of frame t estimates the
label at t + label_shift, and the caller places it there with affectflow.data.labels
(evaluate at the gold rows' times, predict and annotate at the frame times).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import fail
from ..modelfile import PipelineSettings, load_model_file, model_file
from ..nets.networks import CNNConfig, FaceCNN, FrameRNN, RNNConfig
from ..nets.tensors import cnn_forward, edge_pad, rnn_window_predictions


@dataclass
class Pipeline:
    """A loaded model file: the CNN, the RNN (for kind "rnn") and their inference settings."""

    path: Path
    kind: str  # "cnn" or "rnn"
    cnn: FaceCNN
    rnn: FrameRNN | None
    settings: PipelineSettings
    run_info: dict  # the training run's settings (run.json)

    @property
    def dimension(self) -> str:
        return self.settings.dimension

    @property
    def label_shift(self) -> float:
        return self.settings.label_shift

    @property
    def normalization(self) -> str:
        return self.settings.normalization

    @property
    def cnn_sha256(self) -> str:
        return self.settings.cnn_sha256 if self.kind == "rnn" else self.settings.weights_sha256

    def align_settings(self, base=None):
        """AlignSettings (from `base`, the defaults) that reproduce the CNN's training faces."""
        return self.settings.faces.align_settings(base)

    def cnn_outputs(self, chips, batch_size: int = 512, where: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Filled raw uint8 chips [T,S,S] (of the file `where`) -> (CNN features float32 [T,fc], CNN
        prediction float32 [T])."""
        size = np.shape(chips)[1]
        if size != self.cnn.config.chip_size:
            raise fail(
                where or self.path, f"chips of size {size}, but {self.path} was trained on {self.cnn.config.chip_size}"
            )
        return cnn_forward(self.cnn, chips, self.normalization, batch_size)

    def rnn_predictions(self, features: np.ndarray) -> np.ndarray:
        """A recording's CNN features [T,fc] -> the RNN's raw per-frame prediction float32 [T]."""
        from ..nets.rnn_inputs import rnn_inputs

        device = next(self.rnn.parameters()).device
        inputs = rnn_inputs(features, self.settings.feature_norm, self.settings.feature_prior)
        return rnn_window_predictions(self.rnn, torch.from_numpy(inputs).to(device), self.settings.window)

    def predict_chips(self, chips) -> np.ndarray:
        """Filled raw chips of one recording -> raw per-frame predictions float32 [T]."""
        features, prediction = self.cnn_outputs(chips)
        return prediction if self.kind == "cnn" else self.rnn_predictions(features)

    def predict_features(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """A feature file made by this model's CNN -> (frame times float64 [T], raw predictions float32 [T])."""
        from .features import read_feature_file

        data = read_feature_file(path, self.cnn_sha256, with_features=self.kind == "rnn")
        if self.kind == "cnn":
            return data.time, data.prediction
        return data.time, self.rnn_predictions(data.features)


class PipelineStream:
    """A recording's raw per-frame predictions from its filled chips arriving in chunks, in bounded memory.

    push(chips) returns the predictions of the frames it can already predict (all of them, except
    under the transductive feature norm, which needs the whole recording and predicts at finish()).
    The concatenated output equals Pipeline.predict_chips on the whole recording: the causal feature
    statistics and the RNN's last W-1 inputs carry over from chunk to chunk.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        from ..nets.rnn_inputs import CausalStandardizer

        self.pipeline = pipeline
        norm = pipeline.settings.feature_norm
        self.standardize = CausalStandardizer(pipeline.settings.feature_prior) if norm == "causal" else None
        self.held: list[np.ndarray] = []  # the transductive norm's features, until finish()
        self.tail: torch.Tensor | None = None  # the RNN's inputs of the last W-1 frames

    def push(self, chips, where: Path | None = None) -> np.ndarray:
        features, prediction = self.pipeline.cnn_outputs(chips, where=where)
        if self.pipeline.kind == "cnn":
            return prediction
        norm = self.pipeline.settings.feature_norm
        if norm == "recording-transductive":
            self.held.append(features)
            return np.zeros(0, np.float32)
        return self._rnn(self.standardize(features) if norm == "causal" else features)

    def finish(self) -> np.ndarray:
        if not self.held:
            return np.zeros(0, np.float32)
        from ..nets.rnn_inputs import rnn_inputs

        features, self.held = np.concatenate(self.held), []
        return self._rnn(rnn_inputs(features, "recording-transductive"))

    def _rnn(self, inputs: np.ndarray) -> np.ndarray:
        if len(inputs) == 0:
            return np.zeros(0, np.float32)
        rnn, window = self.pipeline.rnn, self.pipeline.settings.window
        x = torch.from_numpy(np.ascontiguousarray(inputs, np.float32)).to(next(rnn.parameters()).device)
        context = edge_pad(x[:1], window)[:-1] if self.tail is None else self.tail
        joined = torch.cat([context, x])
        self.tail = joined[len(joined) - (window - 1) :] if window > 1 else joined[:0]
        # rnn_window_predictions edge-pads the joined sequence again; its first W-1 rows are the
        # context, whose windows are discarded: the windows of the chunk's frames see the true past.
        return rnn_window_predictions(rnn, joined, window)[len(context) :]


def load_pipeline(path: Path, device: str | torch.device = "cpu") -> Pipeline:
    """Load a model file (or a run dir's model file) for inference: a clear one-line error for
    anything that is not an affectflow model file of this or the previous format."""
    contents = load_model_file(model_file(path))
    own = contents.kind == "cnn"
    cnn_config = contents.config if own else contents.cnn_config
    cnn_state = contents.state_dict if own else contents.cnn_state_dict
    # The networks' initializations draw from torch's global RNG: loading a model must not move it.
    with torch.random.fork_rng(devices=[]):
        cnn = _rebuild(contents.path, lambda: FaceCNN(CNNConfig(**cnn_config)), cnn_state)
        rnn = None
        if contents.kind == "rnn":
            rnn = _rebuild(contents.path, lambda: FrameRNN(RNNConfig(**contents.config)), contents.state_dict)
            rnn = rnn.to(device).eval()
    cnn = cnn.to(device, memory_format=torch.channels_last).eval()
    return Pipeline(contents.path, contents.kind, cnn, rnn, contents.settings, contents.extra)


def _rebuild(path: Path, build, state_dict: dict):
    try:
        model = build()
        model.load_state_dict(state_dict)
    except (TypeError, ValueError, RuntimeError) as error:
        raise fail(path, f"weights do not fit the recorded architecture ({str(error).splitlines()[0]})") from None
    return model


EXTRACT_CHUNK_ROWS = 2048  # frames read, predicted and written at a time by extract_to_file


def extract_to_file(
    path: Path, pipeline: Pipeline, faces_path: Path, batch_size: int = 512, chunk_rows: int = EXTRACT_CHUNK_ROWS
) -> None:
    """The feature file (affectflow.inference.features) of one face file, by a CNN model file, read, filled
    (affectflow.data.fill.ChunkFill), predicted and written `chunk_rows` frames at a time: memory independent of the
    recording's length, the same file as from the whole recording (the CNN sees frames independently)."""
    from ..data.fill import FILL_POLICY, ChunkFill
    from ..faces.facefile import face_chunks
    from .features import feature_writer

    if pipeline.kind != "cnn":
        raise fail(pipeline.path, "extract needs a CNN model file")
    subject = Path(faces_path).stem
    with face_chunks(faces_path, chunk_rows, ("chips", "found", "time")) as (_attrs, frames, chunks):
        with feature_writer(
            path,
            frames,
            cnn_sha256=pipeline.cnn_sha256,
            model=str(pipeline.path.resolve()),
            subject=subject,
            fill_policy=FILL_POLICY,
            normalization=pipeline.normalization,
            fc=pipeline.cnn.config.fc,
        ) as writer:
            fill, any_found = ChunkFill(), False
            for chunk in chunks:
                found = np.asarray(chunk["found"], bool)
                any_found = any_found or bool(found.any())
                features, prediction = pipeline.cnn_outputs(fill(chunk["chips"], found), batch_size, where=faces_path)
                writer.append(features=features, prediction=prediction, found=found, time=chunk["time"])
            if not any_found:
                raise fail(faces_path, "no frame with a detected face")
