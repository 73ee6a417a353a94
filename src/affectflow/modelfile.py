"""The model file and the training checkpoint: their one owner (docs/design.md, "Model file").

A model file is data, never code. It is a safetensors file (the field's container for shared
weights: a JSON header, then raw tensors; nothing in it is executed when it is read):

- tensors ``model.<name>``: the network's own weights; for an RNN also ``cnn.<name>``: the frozen
  CNN it was trained on, so that a copied RNN model file predicts on its own;
- metadata (strings): ``format`` (:data:`MODEL_FORMAT`), ``kind`` (cnn / rnn), ``config`` (the
  architecture, JSON), ``cnn_config`` (an RNN's CNN), ``pipeline`` (:class:`PipelineSettings` as
  JSON: everything inference needs) and ``extra`` (the training run's run.json).

:func:`read_settings` parses only the JSON header: no network is built and torch is not
imported (``align --like`` needs four alignment settings). :func:`load_model_file` reads the
tensors with safetensors. A model file of the previous format (``model.pt``, affectflow-model/2)
is read with ``torch.load(weights_only=True)`` only, which refuses any pickle that would run
code; anything else is refused with one line.

A checkpoint (``checkpoint.pt``) holds only tensors and plain values (RNG states as tensors)
and is read with ``torch.load(weights_only=True)`` too: :func:`save_checkpoint`,
:func:`load_checkpoint`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .contracts import CHECKPOINT_FILE, MODEL_FILE
from .errors import fail
from .faces.settings import AlignSettings

MODEL_FORMAT = "affectflow-model/3"
LEGACY_MODEL_FORMAT = "affectflow-model/2"  # model.pt, a torch.save'd dict; read with weights_only=True
MODEL_KINDS = ("cnn", "rnn")
OWN_PREFIX, CNN_PREFIX = "model.", "cnn."
# A safetensors header larger than this is not one of ours (it would only be read to be refused).
MAX_HEADER_BYTES = 64 << 20
REFUSED = "refused: model files and checkpoints are data, and this one is not (only tensors and plain values are read)"


@dataclass(frozen=True)
class FaceSettings:
    """How the CNN's training faces were aligned: new videos are aligned the same way."""

    chip_size: int
    landmarks: int = 5
    landmark_model: str | None = None
    detect_every: int | None = None
    tracking: bool | None = None
    fps: float | None = None

    def align_settings(self, base: AlignSettings | None = None) -> AlignSettings:
        """`base` (the defaults, or the command line's) aligned as these faces were: landmarks, chip size,
        and detect-every and tracking where recorded; the face rule and the stored normalization stay base's."""
        changes = {"landmarks": int(self.landmarks), "chip_size": int(self.chip_size)}
        if self.detect_every:
            changes["detect_every"] = int(self.detect_every)
        if self.tracking is not None:
            changes["tracking"] = bool(self.tracking)
        return replace(base or AlignSettings(), **changes)

    @classmethod
    def from_dict(cls, data: dict) -> FaceSettings:
        landmarks = data.get("landmarks") or (68 if "68" in str(data.get("landmark_model")) else 5)
        return cls(
            chip_size=int(data["chip_size"]),
            landmarks=int(landmarks),
            landmark_model=data.get("landmark_model"),
            detect_every=None if data.get("detect_every") is None else int(data["detect_every"]),
            tracking=None if data.get("tracking") is None else bool(data["tracking"]),
            fps=None if data.get("fps") is None else float(data["fps"]),
        )


@dataclass(frozen=True)
class PipelineSettings:
    """Everything inference needs besides the weights.

    The prediction of frame t estimates the label at t + ``label_shift`` seconds (annotators lag
    the face); every per-frame output places it there (affectflow.data.labels.place_predictions).
    An RNN also has its window, its input standardization (``feature_norm`` with the training
    set's ``feature_prior``) and the SHA-256 of the CNN whose features it reads.
    """

    dimension: str
    label_shift: float
    normalization: str
    faces: FaceSettings
    weights_sha256: str
    affectflow_version: str
    window: int | None = None
    feature_norm: str | None = None
    feature_prior: dict | None = field(default=None, repr=False)
    cnn_sha256: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, kind: str, where) -> PipelineSettings:
        needed = ["dimension", "label_shift", "normalization", "faces", "weights_sha256", "affectflow_version"]
        if kind == "rnn":
            needed += ["window", "feature_norm", "feature_prior", "cnn_sha256"]
        missing = [key for key in needed if data.get(key) is None]
        if missing:
            raise fail(where, f"model file lacks {', '.join(missing)}")
        problem = pipeline_problem(data, kind)
        if problem:
            raise fail(where, f"model file's {problem}")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(
            **{
                **values,
                "faces": FaceSettings.from_dict(data["faces"]),
                "label_shift": float(data["label_shift"]),
                "window": None if data.get("window") is None else int(data["window"]),
            }
        )


MAX_LABEL_SHIFT_S = 60.0  # an annotation delay beyond a minute is no delay but a broken file
MAX_WINDOW = 100_000
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}\Z")


def pipeline_problem(data: dict, kind: str) -> str | None:
    """What is wrong with a model file's inference settings (one field, named), or None: every field's
    type, range and allowed values, so that no reader acts on an edited or broken header."""
    from .contracts import DIMENSIONS, FEATURE_NORMS, NORMALIZATIONS

    def whole(value, low, high) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    shift = data["label_shift"]
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift):
        return f"label_shift {shift!r} is not a finite number of seconds"
    if abs(shift) > MAX_LABEL_SHIFT_S:
        return f"label_shift {shift!r} is beyond +-{MAX_LABEL_SHIFT_S:g} s"
    choices = {"dimension": DIMENSIONS, "normalization": NORMALIZATIONS}
    if kind == "rnn":
        choices["feature_norm"] = FEATURE_NORMS
    for key, allowed in choices.items():
        if data[key] not in allowed:
            return f"{key} {data[key]!r} is not one of {', '.join(allowed)}"
    for key in ("weights_sha256", "cnn_sha256") if kind == "rnn" else ("weights_sha256",):
        if not isinstance(data[key], str) or not SHA256_PATTERN.match(data[key]):
            return f"{key} {data[key]!r} is not a SHA-256"
    if kind == "rnn" and not whole(data["window"], 1, MAX_WINDOW):
        return f"window {data['window']!r} is not a whole number of frames in 1..{MAX_WINDOW}"
    if kind == "rnn" and data["feature_norm"] == "causal":
        problem = _prior_problem(data["feature_prior"])
        if problem:
            return f"feature_prior {problem}"
    return _faces_problem(data["faces"])


def _faces_problem(faces) -> str | None:
    from .contracts import LANDMARK_POINTS, chip_size_problem

    if not isinstance(faces, dict):
        return f"faces {faces!r} is not a mapping"
    size = faces.get("chip_size")
    if isinstance(size, bool) or not isinstance(size, int):
        return f"faces.chip_size {size!r} is not a whole number of pixels"
    if chip_size_problem(size):
        return f"faces.chip_size {size!r}: {chip_size_problem(size)}"
    if faces.get("landmarks") is not None and faces["landmarks"] not in LANDMARK_POINTS:
        return f"faces.landmarks {faces['landmarks']!r} is not one of {', '.join(map(str, LANDMARK_POINTS))}"
    every = faces.get("detect_every")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        return f"faces.detect_every {every!r} is not a whole number >= 1"
    return None


def _prior_problem(prior) -> str | None:
    if not isinstance(prior, dict) or not {"mean", "std", "frames"} <= set(prior):
        return "is not a mapping of mean, std and frames"
    mean, std, frames = prior["mean"], prior["std"], prior["frames"]
    if not isinstance(mean, list) or not isinstance(std, list) or len(mean) != len(std) or not mean:
        return "has mean and std that are not two lists of one length"
    values = mean + std
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return "holds a value that is not a finite number"
    if min(std) < 0 or isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        return "has a negative std or frames that are not a whole number >= 1"
    return None


@dataclass
class ModelFile:
    """A model file's contents: weights as tensors, settings as plain data."""

    path: Path
    kind: str
    config: dict  # the network's architecture (models.CNNConfig / RNNConfig fields)
    settings: PipelineSettings
    extra: dict  # the training run's settings (run.json)
    state_dict: dict | None = None  # None from read_settings
    cnn_config: dict | None = None  # an RNN's CNN
    cnn_state_dict: dict | None = None


def model_file(path) -> Path:
    """A model file, or the model file of a run dir."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


# ----------------------------------------------------------------------------- writing


def state_sha256(state_dict: dict) -> str:
    """SHA-256 of weights (names, dtypes, shapes and values in name order): a network's identity in
    feature files and in the RNN model files that embed it."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_model_file(
    path,
    kind: str,
    config: dict,
    state_dict: dict,
    settings: PipelineSettings,
    extra: dict | None = None,
    cnn: tuple[dict, dict] | None = None,
) -> None:
    """Write a model file: `cnn` = (config, state dict) of the CNN an RNN was trained on."""
    from safetensors.torch import save_file

    from .io import atomic_path

    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}")
    if (kind == "rnn") != (cnn is not None):
        raise ValueError("an RNN model file embeds its CNN, a CNN model file embeds nothing")
    tensors = {OWN_PREFIX + k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = {
        "format": MODEL_FORMAT,
        "kind": kind,
        "config": json.dumps(config, sort_keys=True),
        "pipeline": settings.to_json(),
        "extra": json.dumps(extra or {}, sort_keys=True, default=str),
    }
    if cnn is not None:
        cnn_config, cnn_state = cnn
        tensors.update({CNN_PREFIX + k: v.detach().cpu().contiguous() for k, v in cnn_state.items()})
        metadata["cnn_config"] = json.dumps(cnn_config, sort_keys=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


# ----------------------------------------------------------------------------- reading


def read_settings(path) -> ModelFile:
    """A model file's kind, architecture and pipeline settings, without its tensors.

    A safetensors file's JSON header is parsed directly: no network is built, torch is not
    imported. A legacy .pt file needs torch (read with weights_only=True).
    """
    path = model_file(path)
    header = _safetensors_header(path)
    if header is None:
        return _legacy(path, with_tensors=False)
    return _from_metadata(path, header.get("__metadata__") or {})


def load_model_file(path) -> ModelFile:
    """A model file with its tensors (torch CPU tensors)."""
    path = model_file(path)
    header = _safetensors_header(path)
    if header is None:
        return _legacy(path, with_tensors=True)
    contents = _from_metadata(path, header.get("__metadata__") or {})
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise fail(path, f"unreadable model file ({error})") from None
    contents.state_dict = {k[len(OWN_PREFIX) :]: v for k, v in tensors.items() if k.startswith(OWN_PREFIX)}
    if contents.kind == "rnn":
        contents.cnn_state_dict = {k[len(CNN_PREFIX) :]: v for k, v in tensors.items() if k.startswith(CNN_PREFIX)}
    _check_hashes(contents)
    return contents


def _safetensors_header(path: Path) -> dict | None:
    """The JSON header of a safetensors file; None for anything else (a legacy .pt goes to torch.load)."""
    try:
        size_on_disk = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            (size,) = struct.unpack("<Q", head)
            if not 2 <= size <= min(MAX_HEADER_BYTES, size_on_disk - 8):
                return None
            text = fh.read(size)
    except FileNotFoundError:
        raise fail(path, "model file not found (train it first)") from None
    except IsADirectoryError:
        raise fail(path, f"is a folder without a {MODEL_FILE}") from None
    if text[:1] != b"{":
        return None
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise fail(path, "not an affectflow model file (a damaged safetensors header)") from None
    if not isinstance(header, dict):
        raise fail(path, "not an affectflow model file (a damaged safetensors header)")
    return header


def _json_entry(path: Path, metadata: dict, key: str) -> dict:
    try:
        value = json.loads(metadata[key])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise fail(path, f"model file has no readable {key!r} entry (corrupt file?)") from None
    if not isinstance(value, dict):
        raise fail(path, f"model file's {key!r} entry is not a mapping")
    return value


def _from_metadata(path: Path, metadata: dict) -> ModelFile:
    kind = metadata.get("kind")
    if metadata.get("format") != MODEL_FORMAT or kind not in MODEL_KINDS:
        raise fail(path, f"not an affectflow model file (format {metadata.get('format')!r}, expected {MODEL_FORMAT})")
    return ModelFile(
        path=path,
        kind=kind,
        config=_json_entry(path, metadata, "config"),
        settings=PipelineSettings.from_dict(_json_entry(path, metadata, "pipeline"), kind, path),
        extra=_json_entry(path, metadata, "extra"),
        cnn_config=_json_entry(path, metadata, "cnn_config") if kind == "rnn" else None,
    )


def _check_hashes(contents: ModelFile) -> None:
    """The weights match their recorded SHA-256 and are finite (a diverged run's NaN weights would give a
    table of NaN and exit 0)."""
    for state in (contents.state_dict, contents.cnn_state_dict or {}):
        for name, tensor in state.items():
            if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
                raise fail(contents.path, f"weight {name} holds NaN or inf (a diverged training run): retrain it")
    if state_sha256(contents.state_dict) != contents.settings.weights_sha256:
        raise fail(contents.path, "the weights do not match their recorded SHA-256 (corrupt file)")
    if contents.kind == "rnn" and state_sha256(contents.cnn_state_dict) != contents.settings.cnn_sha256:
        raise fail(contents.path, "the embedded CNN's weights do not match their recorded SHA-256 (corrupt file)")


def safe_torch_load(path: Path, what: str) -> object:
    """torch.load with weights_only=True: tensors and plain values only; a pickle that would run code,
    or any other unreadable file, is one AffectflowError naming the file."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise fail(path, f"{what} not found") from None
    except IsADirectoryError:
        raise fail(path, f"is a folder, not a {what}") from None
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()
        detail = next((line for line in reason if "Unsupported global" in line or "GLOBAL" in line), "")
        raise fail(path, f"{REFUSED}{f' ({detail.strip()})' if detail else ''}") from None
    except Exception as error:  # torch raises many types for a corrupt file
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise fail(path, f"unreadable {what} ({type(error).__name__}{': ' + first if first else ''})") from None


def _legacy(path: Path, with_tensors: bool) -> ModelFile:
    """A model.pt of format 2, read as plain data (weights_only=True); anything else is refused."""
    payload = safe_torch_load(path, "model file")
    if not isinstance(payload, dict):
        raise fail(path, "not an affectflow model file")
    if "optimizer" in payload and "architecture" in payload:
        raise fail(path, f"is a training checkpoint, not a model file: use the {MODEL_FILE} beside it")
    kind, settings = payload.get("kind"), payload.get("pipeline")
    if kind not in MODEL_KINDS:
        raise fail(path, "not an affectflow model file")
    if payload.get("format") != LEGACY_MODEL_FORMAT or not isinstance(settings, dict):
        raise fail(
            path,
            f"model file of an older affectflow (format {payload.get('format', 1)}): it lacks the alignment and "
            f"inference settings; re-train it with this version (`affectflow train-{kind}`)",
        )
    embedded = settings.get("cnn") if kind == "rnn" else None
    if kind == "rnn" and not isinstance(embedded, dict):
        raise fail(path, "model file lacks cnn")
    flat = {k: v for k, v in settings.items() if k != "cnn"}
    if embedded is not None:
        flat["cnn_sha256"] = embedded.get("weights_sha256")
    contents = ModelFile(
        path=path,
        kind=kind,
        config=dict(payload.get("config") or {}),
        settings=PipelineSettings.from_dict(flat, kind, path),
        extra=dict(payload.get("extra") or {}),
        state_dict=dict(payload.get("state_dict") or {}) if with_tensors else None,
        cnn_config=dict(embedded.get("config") or {}) if embedded else None,
        cnn_state_dict=dict(embedded.get("state_dict") or {}) if embedded and with_tensors else None,
    )
    if with_tensors:
        _check_hashes(contents)
    return contents


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, state: dict) -> None:
    """A training checkpoint: a dict of tensors and plain values (see learning.checkpoints.Run.save_epoch)."""
    import torch

    from .io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path) -> dict:
    state = safe_torch_load(Path(path), "checkpoint")
    if not isinstance(state, dict) or "architecture" not in state or "model" not in state:
        raise fail(path, f"not an affectflow training checkpoint ({CHECKPOINT_FILE})")
    return state
