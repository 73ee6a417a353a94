"""Tiny models trained through the CLI on real aligned faces of a synthetic corpus, for the tests of
the paths from a model file to predictions (predict, annotate)."""

from __future__ import annotations

from pathlib import Path

from affectflow.contracts import MODEL_FILE
from affectflow.data.corpus import open_corpus
from helpers import run_cli


def aligned_corpus(root: Path, seed: int, seconds: float):
    """A 1 train + 1 dev subject synthetic corpus (320x240, 25 fps), aligned to 32x32 chips:
    (corpus, {subject: face file})."""
    from affectflow.synth import synthesize_corpus

    corpus_dir = synthesize_corpus(
        root / "corpus",
        seed=seed,
        subjects=(1, 1, 0),
        seconds=seconds,
        fps=25.0,
        size=(320, 240),
        workers=1,
        progress=False,
    )
    corpus = open_corpus(corpus_dir)
    faces = {r.subject: root / "faces" / f"{r.subject}.h5" for r in corpus.recordings}
    for recording in corpus.recordings:
        face_file = faces[recording.subject]
        run_cli("align", recording.video, "-o", face_file, "--chip-size", 32, "--threads", 1, "--quiet", check=True)
    return corpus, faces


def train_tiny_models(
    root: Path,
    corpus,
    faces: dict,
    *,
    variant: str,
    fc: int,
    hidden: int,
    cnn_epochs: int,
    rnn_epochs: dict,
    label_shift: float = 0.0,
) -> None:
    """root/cnn (a 4/8/8 CNN), its features in root/features, and one RNN (window 10) per
    dimension of `rnn_epochs` ({dimension: epochs}): root/rnn for valence, root/rnn_{dimension} else;
    the RNNs trained at `label_shift` s (the annotation delay)."""
    run_cli(
        "train-cnn",
        "--corpus",
        corpus.root,
        "--faces",
        *faces.values(),
        "--variant",
        variant,
        "--seed",
        0,
        "--out",
        root / "cnn",
        "--epochs",
        cnn_epochs,
        "--channels",
        "4,8,8",
        "--fc",
        fc,
        "--device",
        "cpu",
        "--batch-size",
        32,
        check=True,
    )
    features = [root / "features" / f"{subject}.h5" for subject in faces]
    for face_file, feature_file in zip(faces.values(), features):
        cnn = root / "cnn" / MODEL_FILE
        run_cli("extract", "--model", cnn, "--faces", face_file, "-o", feature_file, "--device", "cpu", check=True)
    for dimension, epochs in rnn_epochs.items():
        out = root / ("rnn" if dimension == "valence" else f"rnn_{dimension}")
        run_cli(
            "train-rnn",
            "--corpus",
            corpus.root,
            "--cnn",
            root / "cnn" / MODEL_FILE,
            "--features",
            *features,
            "--seed",
            0,
            "--out",
            out,
            "--window",
            10,
            "--window-stride",
            2,
            "--hidden",
            hidden,
            "--epochs",
            epochs,
            "--dimension",
            dimension,
            "--label-shift",
            label_shift,
            "--device",
            "cpu",
            check=True,
        )
