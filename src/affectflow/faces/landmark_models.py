"""dlib's shape predictor files (5 or 68 landmarks): where they are, found at run time.

One place finds them for every user: the aligner (:mod:`affectflow.faces.align`), the synthetic
corpus's photographs (:mod:`affectflow.synth.identity`), the reference aligner of the tests
and the benchmarks. The files come from the face-recognition-models package, or from the
folder that ``AFFECTFLOW_LANDMARK_DIR`` names.

This module imports nothing heavy (no dlib, no numpy).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import fail

LANDMARK_MODELS = {5: "shape_predictor_5_face_landmarks.dat", 68: "shape_predictor_68_face_landmarks.dat"}
# A folder holding the .dat models, instead of the face-recognition-models package.
LANDMARK_DIR_VARIABLE = "AFFECTFLOW_LANDMARK_DIR"


def landmark_model_path(landmarks: int = 5) -> Path:
    """The dlib shape predictor file for 5 or 68 landmarks, located at run time."""
    if landmarks not in LANDMARK_MODELS:
        raise fail(f"--landmarks {landmarks}", "landmark model must be 5 or 68 points")
    folder = os.environ.get(LANDMARK_DIR_VARIABLE)
    if not folder:
        # Not `import face_recognition_models`: its __init__ needs pkg_resources, gone from new setuptools.
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise fail("face_recognition_models", "package not installed (pip install face-recognition-models==0.3.0)")
        folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    path = Path(folder) / LANDMARK_MODELS[landmarks]
    if not path.is_file():
        raise fail(path, f"{landmarks}-point landmark model not found")
    return path
