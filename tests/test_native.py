"""The native aligner against dlib's own Python API (dlib-bin) on a real photograph."""

from __future__ import annotations

import numpy as np
import pytest

from affectflow import _native
from affectflow.contracts import DEFAULT_CHIP_SIZE, DEFAULT_FACE_RULE, FACE_RULES
from affectflow.faces.align import CHIP_PADDING
from affectflow.faces.landmark_models import landmark_model_path
from affectflow.testing.reference import ReferenceAligner, moving_face_video, similarity

# (rotation degrees, scale, tx, ty) applied to the astronaut photo about its face
WARPS = [(0, 1.0, 0, 0), (15, 1.0, 30, -20), (-20, 1.3, -40, 25), (8, 0.8, 60, 40), (-5, 1.6, 10, 10), (25, 1.1, 0, 0)]
FACE_CENTRE = (222.0, 126.0)
# The native aligner has no defaults of its own for these: the pipeline's are affectflow's.
DEFAULTS = {"chip_size": DEFAULT_CHIP_SIZE, "padding": CHIP_PADDING, "face_rule": DEFAULT_FACE_RULE}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    import cv2
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)


@pytest.fixture(scope="module")
def reference() -> ReferenceAligner:
    return ReferenceAligner(landmarks=5)


def warped(image: np.ndarray, warp: tuple) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    angle, scale, tx, ty = warp
    matrix = similarity(angle, scale, tx, ty, centre=FACE_CENTRE)
    return cv2.warpAffine(image, matrix, (640, 560), flags=cv2.INTER_LINEAR), matrix


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def dlib_shape(landmarks: np.ndarray):
    import dlib

    points = [dlib.point(int(x), int(y)) for x, y in landmarks]
    return dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), points)


@pytest.mark.parametrize("warp", WARPS)
def test_chip_equals_dlib_get_face_chip(astronaut, reference, warp):
    import dlib

    image, _ = warped(astronaut, warp)
    found, reference_chip, landmarks = reference.align_frame(image)
    assert found
    chip, transform = _native.face_chip(image, landmarks, 96, 0.25)
    expected = dlib.get_face_chip(image, dlib_shape(landmarks), size=96, padding=0.25)
    assert np.abs(chip.astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(chip, reference_chip)
    assert transform.dtype == np.float32 and transform.shape == (2, 3)


@pytest.mark.parametrize("warp", WARPS[1:])
def test_recovered_transform_undoes_the_applied_one(astronaut, reference, warp):
    image, applied = warped(astronaut, warp)
    _, _, original_landmarks = reference.align_frame(astronaut)
    _, original_transform = _native.face_chip(astronaut, original_landmarks, 96, 0.25)
    # Exact: the same face points, moved by the applied warp (rounded to whole pixels as dlib's are).
    moved = np.round(apply(applied, original_landmarks))
    _, transform = _native.face_chip(image, moved, 96, 0.25)
    grid = np.array([[x, y] for x in (190, 222, 255) for y in (95, 126, 160)], dtype=np.float64)
    np.testing.assert_allclose(apply(transform, apply(applied, grid)), apply(original_transform, grid), atol=0.6)
    # Detected afresh on the warped image: landmark noise only (chip pixels).
    found, _, landmarks = reference.align_frame(image)
    _, detected_transform = _native.face_chip(image, landmarks, 96, 0.25)
    error = np.linalg.norm(apply(detected_transform, apply(applied, grid)) - apply(original_transform, grid), axis=1)
    assert found and error.mean() < 2.0
    # The transform maps the landmarks to dlib's fixed chip positions of eyes and nose.
    chip_points = apply(transform, moved)
    assert np.all((chip_points > 0) & (chip_points < 96))


def test_detect_faces_matches_dlib(astronaut):
    import dlib

    boxes, scores, _ = dlib.get_frontal_face_detector().run(astronaut, 0, 0.0)
    ours = _native.detect_faces(astronaut)
    assert [box for box, _ in ours] == [(b.left(), b.top(), b.right(), b.bottom()) for b in boxes]
    np.testing.assert_allclose([score for _, score in ours], scores, rtol=1e-6)


@pytest.fixture(scope="module")
def moving() -> np.ndarray:
    return moving_face_video(40, size=(480, 360), face_width=120, hidden=((20, 24),))


def test_per_frame_path_equals_the_dlib_reference(moving, reference):
    aligner = _native.Aligner(str(landmark_model_path(5)), **DEFAULTS, tracking=False, threads=2)
    ours = aligner.process(moving)
    expected = reference.align_frames(moving)
    np.testing.assert_array_equal(ours["found"], expected.found)
    np.testing.assert_array_equal(ours["landmarks"], expected.landmarks)
    np.testing.assert_array_equal(ours["chips"], expected.chips)
    assert ours["detected"].all() and aligner.detections_run == len(moving)
    missing = ~ours["found"]
    assert missing[20:24].all() and not ours["chips"][missing].any()
    assert np.isnan(ours["landmarks"][missing]).all() and np.isnan(ours["transform"][missing]).all()


def test_bgr_frames_align_as_their_opencv_gray(moving):
    import cv2

    bgr = np.stack([cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) for f in moving[:6]])
    bgr[..., 0] //= 2  # colour, so that the conversion's weights matter
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in bgr])
    model = str(landmark_model_path(5))
    from_bgr = _native.Aligner(model, **DEFAULTS, threads=1).process(bgr)
    from_gray = _native.Aligner(model, **DEFAULTS, threads=1).process(gray)
    for name in ("chips", "found", "landmarks"):
        np.testing.assert_array_equal(from_bgr[name], from_gray[name])


def test_tracking_runs_few_detections_and_stays_on_the_face(moving):
    model = str(landmark_model_path(5))
    per_frame = _native.Aligner(model, **DEFAULTS, tracking=False).process(moving)
    aligner = _native.Aligner(model, **DEFAULTS, detect_every=10, threads=1)
    tracked = aligner.process(moving)
    assert aligner.detections_run < len(moving) / 2
    assert tracked["found"].sum() >= per_frame["found"].sum()
    both = tracked["found"] & per_frame["found"]
    points = per_frame["landmarks"][both]
    iod = np.linalg.norm(points[:, :2].mean(axis=1) - points[:, 2:4].mean(axis=1), axis=1)
    distance = np.linalg.norm(tracked["landmarks"][both] - points, axis=2).mean(axis=1)
    assert (distance / iod).mean() < 0.02
    # The detector runs on the first frame, every 10th tracked frame, and every 3rd frame while the
    # face is gone; the returning face is tracked backwards, so it is not picked up late.
    assert tracked["detected"][0] and tracked["detected"][20] and tracked["detected"][21:24].sum() >= 1
    np.testing.assert_array_equal(tracked["found"], per_frame["found"])


def test_batches_continue_the_track(moving):
    model = str(landmark_model_path(5))
    whole = _native.Aligner(model, **DEFAULTS, threads=1).process(moving)
    aligner = _native.Aligner(model, **DEFAULTS, threads=1)
    parts = [aligner.process(np.ascontiguousarray(moving[i : i + 7])) for i in range(0, len(moving), 7)]
    assert not any(p["detected"][0] for p in parts[1:3])  # frames 7 and 14 continue the track
    np.testing.assert_array_equal(np.concatenate([p["found"] for p in parts]), whole["found"])
    np.testing.assert_array_equal(np.concatenate([p["landmarks"] for p in parts]), whole["landmarks"])


def test_68_point_model(astronaut):
    aligner = _native.Aligner(str(landmark_model_path(68)), **DEFAULTS, threads=1)
    result = aligner.process(astronaut[None])
    assert aligner.landmark_count == 68 and result["landmarks"].shape == (1, 68, 2) and result["found"][0]


@pytest.mark.parametrize(
    "frames, problem",
    [
        (np.zeros((2, 64, 64), np.float32), "uint8"),
        (np.zeros((64, 64), np.uint8), r"\[T,H,W\]"),
        (np.zeros((2, 64, 64, 4), np.uint8), r"\[T,H,W,3\]"),
        (np.zeros((2, 64, 128), np.uint8)[:, :, ::2], "C-contiguous"),
        (np.zeros((2, 8, 8), np.uint8), "too small"),
    ],
)
def test_bad_frames_are_named(frames, problem):
    aligner = _native.Aligner(str(landmark_model_path(5)), **DEFAULTS, threads=1)
    with pytest.raises(ValueError, match=problem):
        aligner.process(frames)


def test_missing_or_bad_landmark_model(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        _native.Aligner(str(tmp_path / "missing.dat"), **DEFAULTS)
    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="shape predictor"):
        _native.Aligner(str(junk), **DEFAULTS)
    with pytest.raises(ValueError, match="landmarks"):
        _native.face_chip(np.zeros((64, 64), np.uint8), np.zeros((3, 2)))


def test_a_returning_face_is_tracked_backwards_to_its_first_frame():
    frames = moving_face_video(40, size=(480, 360), face_width=120, hidden=((10, 20),))
    model = str(landmark_model_path(5))
    tracked = _native.Aligner(model, **DEFAULTS, threads=1).process(frames)
    per_frame = _native.Aligner(model, **DEFAULTS, tracking=False).process(frames)
    np.testing.assert_array_equal(tracked["found"], per_frame["found"])
    assert not tracked["found"][10:20].any() and tracked["found"][20:].all()
    assert tracked["detected"][10:20].sum() < 10  # searches skip frames while the face is gone
    assert not tracked["detected"][20]  # found by tracking back from a later detection


def test_sources_and_scores_of_the_per_frame_path_are_dlibs(moving, reference):
    import dlib

    from affectflow.faces.facefile import DETECTED, LOST, SOURCES

    assert (SOURCES[_native.SOURCE_LOST], SOURCES[_native.SOURCE_DETECTED], SOURCES[_native.SOURCE_TRACKED]) == (
        "lost",
        "detected",
        "tracked",
    )
    result = _native.Aligner(str(landmark_model_path(5)), **DEFAULTS, tracking=False, threads=2).process(moving)
    assert result["source"].dtype == np.uint8 and result["score"].dtype == np.float32
    np.testing.assert_array_equal(result["source"], np.where(result["found"], DETECTED, LOST))
    detector = dlib.get_frontal_face_detector()
    for frame, found, score in zip(moving, result["found"], result["score"]):
        _, scores, _ = detector.run(frame, 0, 0.0)
        if found:
            # dlib's score of the same detection: most are equal; our build of dlib's HOG rounds some
            # sums differently (compiler flags), which moves a few scores by up to 0.2 %
            np.testing.assert_allclose(score, max(scores), rtol=5e-3)
        else:
            assert not scores and np.isnan(score)


def test_sources_and_scores_while_tracking(moving):
    from affectflow.faces.facefile import DETECTED, LOST, TRACKED

    result = _native.Aligner(str(landmark_model_path(5)), **DEFAULTS, detect_every=10, threads=1).process(moving)
    source, found, detected, score = result["source"], result["found"], result["detected"], result["score"]
    # Detected: the detector ran on this frame and found the face; tracked: found without it;
    # lost: no face (the detector may have run and failed, or skipped the frame).
    np.testing.assert_array_equal(source == DETECTED, found & detected)
    np.testing.assert_array_equal(source == TRACKED, found & ~detected)
    np.testing.assert_array_equal(source == LOST, ~found)
    assert (source == TRACKED).sum() > (source == DETECTED).sum() > 0
    np.testing.assert_array_equal(np.isfinite(score), source == DETECTED)
    assert (score[source == DETECTED] > 0).all()


@pytest.mark.parametrize("points", [5, 68])
def test_landmarks_equal_dlibs_shape_predictor_on_any_box(astronaut, points):
    """Our flat evaluation of the regression trees gives dlib's landmarks, boxes partly outside the frame included."""
    import dlib

    aligner = _native.Aligner(str(landmark_model_path(points)), **DEFAULTS, threads=1)
    predictor = dlib.shape_predictor(str(landmark_model_path(points)))
    rng = np.random.default_rng(points)
    for _ in range(60):
        width = int(rng.integers(30, 300))
        left, top = int(rng.integers(-80, 480)), int(rng.integers(-80, 480))
        box = (left, top, left + width, top + int(width * rng.uniform(0.8, 1.2)))
        expected = predictor(astronaut, dlib.rectangle(*box))
        np.testing.assert_array_equal(
            aligner.landmarks(astronaut, box), np.array([(p.x, p.y) for p in expected.parts()], np.float32)
        )


@pytest.mark.parametrize("size", [(1, 1), (3, 31), (17, 33), (480, 640)])
def test_bgr_to_gray_is_opencvs(size):
    import cv2

    rng = np.random.default_rng(size[1])
    bgr = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    bgr[0, 0] = 255  # the largest sums
    gray = np.empty(size, np.uint8)
    _native.bgr_to_gray(bgr, gray)
    np.testing.assert_array_equal(gray, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    with pytest.raises(ValueError, match="out"):
        _native.bgr_to_gray(bgr, np.empty((size[0] + 1, size[1]), np.uint8))


def test_chip_size_padding_and_face_rule_are_required():
    """Their defaults live in Python only (contracts.DEFAULT_CHIP_SIZE, align.CHIP_PADDING and
    contracts.DEFAULT_FACE_RULE)."""
    model = str(landmark_model_path(5))
    for missing in DEFAULTS:
        with pytest.raises(TypeError):
            _native.Aligner(model, **{key: value for key, value in DEFAULTS.items() if key != missing})
    assert _native.FACE_RULES == FACE_RULES
    assert [_native.Aligner(model, **{**DEFAULTS, "face_rule": rule}).face_rule for rule in FACE_RULES] == list(
        FACE_RULES
    )
    with pytest.raises(ValueError, match="face rule 'middle'"):
        _native.Aligner(model, **{**DEFAULTS, "face_rule": "middle"})


def test_the_typed_stub_names_what_the_extension_has():
    """src/affectflow/_native.pyi (what editors and type checkers read) against the compiled module: the same
    functions, constants and Aligner members, and the same keyword arguments for each function."""
    import ast
    import inspect
    from pathlib import Path

    stub = ast.parse((Path(_native.__file__).parent / "_native.pyi").read_text())
    top = {n.name for n in stub.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    top |= {n.target.id for n in stub.body if isinstance(n, ast.AnnAssign)}
    public = {name for name in dir(_native) if not name.startswith("_")}
    assert top == public
    aligner = next(n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "Aligner")
    members = {n.name for n in aligner.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"}
    assert members == {name for name in dir(_native.Aligner) if not name.startswith("_")}
    for node in stub.body:
        if isinstance(node, ast.FunctionDef):
            stubbed = [a.arg for a in node.args.args + node.args.kwonlyargs]
            assert all(f"{name}" in inspect.getdoc(getattr(_native, node.name)) for name in stubbed), node.name
