"""The one inference path: a model file and face chips (or feature files) -> per-frame predictions.

`evaluate`, `predict` and `extract` (and so the workflow) all go through :class:`Pipeline`.
A model file is self-contained (docs/design.md, "Model file"): besides its weights it
carries everything inference needs, in ``payload["pipeline"]``:

- every model: ``dimension``, ``label_shift`` (s), ``affectflow_version``, ``weights_sha256``
  (of its own weights), ``normalization`` (of the CNN's input chips) and ``faces`` (the
  alignment settings of the CNN's training faces: chip_size, landmarks, landmark_model,
  detect_every, tracking);
- an RNN also: ``window``, ``feature_norm``, ``feature_prior`` (the causal normalization's
  training-set statistics) and ``cnn``: the frozen CNN it was trained on (config, weights,
  weights_sha256), so a copied RNN model file predicts on its own.

Raw predictions are per frame and NOT shifted: the caller places the prediction of frame t
at t + label_shift (evaluate at the gold rows' times, predict at the frame times).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .contracts import MODEL_FILE
from .errors import fail
from .models import CNNConfig, FaceCNN, FrameRNN, RNNConfig, config_dict, weights_sha256

MODEL_FORMAT = "affectflow-model/2"
PIPELINE_KEYS = {
    "cnn": ("dimension", "label_shift", "normalization", "faces", "weights_sha256", "affectflow_version"),
    "rnn": (
        "dimension",
        "label_shift",
        "normalization",
        "faces",
        "weights_sha256",
        "affectflow_version",
        "window",
        "feature_norm",
        "feature_prior",
        "cnn",
    ),
}
# The feature file's attribute naming the CNN whose features it holds (its weights' SHA-256).
FEATURES_CNN_ATTR = "cnn_sha256"


def model_file(path: Path) -> Path:
    """A model file, or the model.pt of a run dir."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


@dataclass
class Pipeline:
    """A loaded model file: the CNN, the RNN (for kind "rnn") and their inference settings."""

    path: Path
    kind: str  # "cnn" or "rnn"
    cnn: FaceCNN
    rnn: FrameRNN | None
    settings: dict  # payload["pipeline"]
    run_info: dict  # payload["extra"]: the training run's settings (run.json)

    @property
    def dimension(self) -> str:
        return self.settings["dimension"]

    @property
    def label_shift(self) -> float:
        return float(self.settings["label_shift"])

    @property
    def normalization(self) -> str:
        return self.settings["normalization"]

    @property
    def cnn_sha256(self) -> str:
        return self.settings["cnn"]["weights_sha256"] if self.kind == "rnn" else self.settings["weights_sha256"]

    def align_options(self) -> dict:
        """align_video keywords that reproduce the CNN's training faces."""
        faces = self.settings["faces"]
        landmarks = faces.get("landmarks") or (68 if "68" in str(faces.get("landmark_model")) else 5)
        options = {"landmarks": int(landmarks), "chip_size": int(faces["chip_size"])}
        if faces.get("detect_every"):
            options["detect_every"] = int(faces["detect_every"])
        if faces.get("tracking") is not None:
            options["tracking"] = bool(faces["tracking"])
        return options

    def cnn_outputs(self, chips, batch_size: int = 512, where: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Filled raw uint8 chips [T,S,S] (of the file `where`) -> (CNN features float32 [T,fc], CNN
        prediction float32 [T])."""
        size = np.shape(chips)[1]
        if size != self.cnn.config.chip_size:
            raise fail(
                where or self.path, f"chips of size {size}, but {self.path} was trained on {self.cnn.config.chip_size}"
            )
        return extract_features(self.cnn, chips, self.normalization, batch_size)

    def rnn_predictions(self, features: np.ndarray) -> np.ndarray:
        """A recording's CNN features [T,fc] -> the RNN's raw per-frame prediction float32 [T]."""
        from .dataset import rnn_inputs
        from .trainer import rnn_window_predictions

        device = next(self.rnn.parameters()).device
        inputs = rnn_inputs(features, self.settings["feature_norm"], self.settings["feature_prior"])
        with torch.no_grad():
            return rnn_window_predictions(self.rnn, torch.from_numpy(inputs).to(device), int(self.settings["window"]))

    def predict_chips(self, chips) -> np.ndarray:
        """Filled raw chips of one recording -> raw per-frame predictions float32 [T]."""
        features, prediction = self.cnn_outputs(chips)
        return prediction if self.kind == "cnn" else self.rnn_predictions(features)

    def predict_features(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """A feature file made by this model's CNN -> (frame times float64 [T], raw predictions float32 [T])."""
        from .dataset import load_features, read_prediction

        check_feature_file(path, self.cnn_sha256)
        if self.kind == "cnn":
            return read_prediction(path)
        frames = load_features(path, Path(path).stem)
        return frames.time, self.rnn_predictions(frames.data)


class PipelineStream:
    """A recording's raw per-frame predictions from its filled chips arriving in chunks, in bounded memory.

    push(chips) returns the predictions of the frames it can already predict (all of them, except
    under the transductive feature norm, which needs the whole recording and predicts at finish()).
    The concatenated output equals Pipeline.predict_chips on the whole recording: the causal feature
    statistics and the RNN's last W-1 inputs carry over from chunk to chunk.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        from .dataset import CausalStandardizer

        self.pipeline = pipeline
        norm = pipeline.settings.get("feature_norm")
        self.standardize = CausalStandardizer(pipeline.settings["feature_prior"]) if norm == "causal" else None
        self.held: list[np.ndarray] = []  # the transductive norm's features, until finish()
        self.tail: torch.Tensor | None = None  # the RNN's inputs of the last W-1 frames

    def push(self, chips, where: Path | None = None) -> np.ndarray:
        features, prediction = self.pipeline.cnn_outputs(chips, where=where)
        if self.pipeline.kind == "cnn":
            return prediction
        norm = self.pipeline.settings["feature_norm"]
        if norm == "recording-transductive":
            self.held.append(features)
            return np.zeros(0, np.float32)
        return self._rnn(self.standardize(features) if norm == "causal" else features)

    def finish(self) -> np.ndarray:
        if not self.held:
            return np.zeros(0, np.float32)
        from .dataset import rnn_inputs

        features, self.held = np.concatenate(self.held), []
        return self._rnn(rnn_inputs(features, "recording-transductive"))

    def _rnn(self, inputs: np.ndarray) -> np.ndarray:
        from .trainer import edge_pad, rnn_window_predictions

        if len(inputs) == 0:
            return np.zeros(0, np.float32)
        rnn, window = self.pipeline.rnn, int(self.pipeline.settings["window"])
        x = torch.from_numpy(np.ascontiguousarray(inputs, np.float32)).to(next(rnn.parameters()).device)
        context = edge_pad(x[:1], window)[:-1] if self.tail is None else self.tail
        joined = torch.cat([context, x])
        self.tail = joined[len(joined) - (window - 1) :] if window > 1 else joined[:0]
        with torch.no_grad():
            # rnn_window_predictions edge-pads the joined sequence again; its first W-1 rows are the
            # context, whose windows are discarded: the windows of the chunk's frames see the true past.
            return rnn_window_predictions(rnn, joined, window)[len(context) :]


def load_pipeline(path: Path, device: str | torch.device = "cpu") -> Pipeline:
    """Load a self-contained model file (or a run dir's model.pt); a clear error for older files."""
    path = model_file(path)
    payload = _read_payload(path)
    kind = payload.get("kind")
    if kind not in PIPELINE_KEYS:
        raise fail(path, "not an affectflow model file")
    settings = payload.get("pipeline")
    if payload.get("format") != MODEL_FORMAT or not isinstance(settings, dict):
        raise fail(
            path,
            f"model file written by an older affectflow (format {payload.get('format', 1)}, not "
            f"{MODEL_FORMAT}): it lacks {', '.join(PIPELINE_KEYS[kind])}; retrain it "
            f"(`affectflow train-{kind}`) with this version",
        )
    missing = [key for key in PIPELINE_KEYS[kind] if key not in settings]
    if missing:
        raise fail(path, f"model file lacks {', '.join(missing)}")
    if kind == "cnn":
        cnn = _rebuild(FaceCNN(CNNConfig(**payload["config"])), payload["state_dict"], path)
        rnn = None
    else:
        embedded = settings["cnn"]
        cnn = _rebuild(FaceCNN(CNNConfig(**embedded["config"])), embedded["state_dict"], path)
        if weights_sha256(cnn) != embedded["weights_sha256"]:
            raise fail(path, "the embedded CNN's weights do not match their recorded SHA-256 (corrupt file)")
        rnn = _rebuild(FrameRNN(RNNConfig(**payload["config"])), payload["state_dict"], path)
    return Pipeline(
        path,
        kind,
        cnn.to(device).eval(),
        None if rnn is None else rnn.to(device).eval(),
        settings,
        payload.get("extra", {}),
    )


def cnn_embedding(pipeline: Pipeline) -> dict:
    """What an RNN model file keeps of the CNN it was trained on (its `pipeline.cnn`)."""
    if pipeline.kind != "cnn":
        raise fail(pipeline.path, "an RNN is trained on the features of a CNN model file, not of an RNN")
    return {
        "config": config_dict(pipeline.cnn.config),
        "state_dict": {k: v.detach().cpu() for k, v in pipeline.cnn.state_dict().items()},
        "weights_sha256": pipeline.settings["weights_sha256"],
    }


def _read_payload(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise fail(path, "model file not found (train it first)") from None
    except IsADirectoryError:
        raise fail(path, "is a folder without a model.pt") from None
    except Exception as error:  # torch raises many types for a corrupt file
        raise fail(path, f"unreadable model file ({error})") from None


def _rebuild(model, state_dict: dict, path: Path):
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise fail(path, f"weights do not fit the recorded architecture ({error})") from None
    return model


def check_feature_file(path: Path, cnn_sha256: str) -> None:
    """Refuse features extracted by another CNN than the model's own (or by an older affectflow)."""
    import h5py

    if not Path(path).is_file():
        raise fail(path, "feature file not found (run `affectflow extract` first)")
    with h5py.File(path, "r") as h5:
        made_by = h5.attrs.get(FEATURES_CNN_ATTR)
    if made_by is None:
        raise fail(path, f"feature file without {FEATURES_CNN_ATTR} (written by an older affectflow): extract it again")
    if (made_by.decode() if isinstance(made_by, bytes) else str(made_by)) != cnn_sha256:
        raise fail(path, "features were extracted by a different CNN than the model's")


def extract_features(model: FaceCNN, chips, normalization: str, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 chips [T,S,S] (numpy or tensor, face-lost frames already filled) ->
    (features float32 [T,fc], prediction float32 [T]), normalized exactly as in training."""
    from .trainer import chips_to_inputs

    device = next(model.parameters()).device
    model.eval().to(memory_format=torch.channels_last)
    chips = torch.as_tensor(chips)
    feats, preds = [], []
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for begin in range(0, len(chips), batch_size):
            x = chips_to_inputs(chips[begin : begin + batch_size].to(device), normalization)
            f = model.features(x.contiguous(memory_format=torch.channels_last))
            feats.append(f.float().cpu())
            preds.append(model.out(f).squeeze(1).float().cpu())
    if not feats:
        return np.zeros((0, model.config.fc), np.float32), np.zeros(0, np.float32)
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def write_feature_file(path: Path, pipeline: Pipeline, faces_path: Path, batch_size: int = 512) -> None:
    """FEATURES.h5 of one face file: features [T,fc], prediction [T], found [T], time [T] (filled frames)."""
    import h5py

    from .dataset import FILL_POLICY, load_faces
    from .io import atomic_path

    if pipeline.kind != "cnn":
        raise fail(pipeline.path, "extract needs a CNN model file")
    subject = Path(faces_path).stem
    frames = load_faces(faces_path, subject)
    features, prediction = pipeline.cnn_outputs(frames.data, batch_size, where=faces_path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("features", data=features.astype(np.float32))
            h5.create_dataset("prediction", data=prediction.astype(np.float32))
            h5.create_dataset("found", data=frames.found)
            h5.create_dataset("time", data=frames.time)
            h5.attrs["model"] = str(pipeline.path.resolve())
            h5.attrs[FEATURES_CNN_ATTR] = pipeline.cnn_sha256
            h5.attrs["subject"] = subject
            h5.attrs["fill_policy"] = FILL_POLICY
            h5.attrs["normalization"] = pipeline.normalization
