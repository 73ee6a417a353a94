"""Shared fixtures: a small synthetic corpus, synthesized once per test session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

# The shared corpus: seed 0; train 2, dev 1, test 1 subjects; 8 s each at 25 fps, 640x480.
SYNTHETIC_CORPUS_SETTINGS = dict(seed=0, subjects=(2, 1, 1), seconds=8.0, fps=25.0, size=(640, 480))


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory) -> Path:
    """Path of a synthetic corpus in the AV+EC 2015 layout (do not modify it: it is shared)."""
    from affectflow.synth import synthesize_corpus

    root = tmp_path_factory.mktemp("synthetic") / "corpus"
    return synthesize_corpus(root, progress=False, **SYNTHETIC_CORPUS_SETTINGS)


@pytest.fixture
def make_corpus() -> Callable[..., Path]:
    """``make_corpus(path, **synth_kwargs) -> Path``: synthesize a corpus of one's own.

    Defaults are small (seed 0, subjects 1,1,0, 4 s, 25 fps, 320x240, one
    process); any keyword of ``affectflow.synth.synthesize_corpus`` overrides them.
    """
    from affectflow.synth import synthesize_corpus

    def make(path, **synth_kwargs) -> Path:
        settings = dict(seed=0, subjects=(1, 1, 0), seconds=4.0, fps=25.0, size=(320, 240), workers=1, progress=False)
        settings.update(synth_kwargs)
        return synthesize_corpus(Path(path), **settings)

    return make
