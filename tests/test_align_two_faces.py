"""``affectflow align --face best|left|right`` on a video of two real faces side by side (as Aff-Wild2's
two-person videos, annotated as NAME_left and NAME_right): the rule picks the person, and tracking,
re-detection and the search after a loss stay with that person."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from affectflow import _native
from affectflow.contracts import DEFAULT_FACE_RULE, FACE_RULES
from affectflow.faces.align import iter_aligned_chunks
from affectflow.faces.facefile import read_faces
from affectflow.faces.settings import AlignSettings
from helpers import read_columns, run_cli, write_video

SIZE = (1280, 720)
MIDDLE = SIZE[0] / 2
FRAMES = 60
FACE_WIDTH = 150  # dlib's box of each face in the video, pixels: large enough for the downscaled searches
# Where each face's box centre sits (x, as a fraction of the width), on the left and on the right.
PLACES = (0.26, 0.74)
COUNTERS = ("detections_run", "region_searches", "frame_searches")


@functools.cache
def two_faces() -> tuple[tuple[np.ndarray, np.ndarray, float], ...]:
    """(gray crop, dlib box centre in the crop, dlib box width) of the astronaut and of Grace Hopper."""
    import cv2
    from matplotlib import cbook
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_GRAYSCALE)
    faces = []
    # dlib's box of each face in its photo (_native.detect_faces), left, top, right, bottom
    for photo, (left, top, right, bottom) in ((astronaut, (179, 83, 266, 170)), (hopper, (161, 137, 376, 352))):
        centre, width = np.array([(left + right) / 2, (top + bottom) / 2]), right - left
        x0, y0 = np.maximum(0, (centre - 1.2 * width).astype(int))
        x1, y1 = (centre + 1.2 * width).astype(int)
        faces.append((np.ascontiguousarray(photo[y0:y1, x0:x1]), centre - (x0, y0), float(width)))
    return tuple(faces)


def render(hidden=((), ()), blur=((0.0, 0.0), (0.0, 0.0)), frames: int = FRAMES) -> np.ndarray:
    """Gray frames [T,H,W]: the astronaut on the left, Grace Hopper on the right, each drifting by up to
    40 px; face k is absent in the half-open frame spans hidden[k] and blurred (Gaussian, sigma in frame
    pixels) from blur[k][0] at the first frame to blur[k][1] at the last."""
    import cv2

    width, height = SIZE
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (height, width), dtype=np.uint8), (0, 0), 6)
    video = np.empty((frames, height, width), np.uint8)
    for i in range(frames):
        frame = video[i]
        frame[:] = background
        for k, ((crop, centre, box_width), place) in enumerate(zip(two_faces(), PLACES)):
            if any(start <= i < stop for start, stop in hidden[k]):
                continue
            scale = FACE_WIDTH / box_width
            sigma = np.interp(i, [0, frames - 1], blur[k])
            source = cv2.GaussianBlur(crop, (0, 0), sigma / scale) if sigma > 0 else crop
            patch = cv2.resize(source, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            phase = 1.7 * k
            target = (
                place * width + 40 * np.sin(2 * np.pi * i / 50 + phase),
                height / 2 + 25 * np.sin(2 * np.pi * i / 40 + phase),
            )
            x, y = np.round(np.asarray(target) - centre * scale).astype(int)  # inside the frame: x, y > 0
            frame[y : y + patch.shape[0], x : x + patch.shape[1]] = patch[: height - y, : width - x]
    return video


def side_scores(frame: np.ndarray) -> dict[str, float]:
    """The detector's score of the face on the left and of the one on the right."""
    detections = _native.detect_faces(frame)
    assert len(detections) == 2
    return {"left" if (box[0] + box[2]) / 2 < MIDDLE else "right": score for box, score in detections}


def face_x(track) -> np.ndarray:
    """Each frame's mean landmark x (NaN where no face was found)."""
    return track.landmarks[:, :, 0].mean(axis=1)


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Both faces in every frame; the astronaut's detector score falls (blurring) and Grace Hopper's rises,
    so that the best-scoring face changes half-way."""
    frames = render(blur=((0.0, 3.5), (3.5, 0.0)))
    return write_video(tmp_path_factory.mktemp("two") / "two_faces.mp4", frames), frames


def test_face_rules_are_the_native_aligners():
    assert FACE_RULES == _native.FACE_RULES and DEFAULT_FACE_RULE == "best"


def test_left_and_right_align_their_person(side_by_side, tmp_path):
    video, frames = side_by_side
    tracks = {}
    for rule in FACE_RULES:
        out = tmp_path / f"{rule}.h5"
        run_cli("align", video, "-o", out, "--face", rule, "--threads", 3, "--quiet", check=True)
        tracks[rule] = read_faces(out)
        assert tracks[rule].attrs["face_rule"] == rule
        assert tracks[rule].found.mean() > 0.9, rule
    left, right = face_x(tracks["left"]), face_x(tracks["right"])
    assert (left[tracks["left"].found] < MIDDLE).all()
    assert (right[tracks["right"].found] > MIDDLE).all()
    # best: the astronaut scores higher at first, Grace Hopper at the end; tracking stays with the astronaut
    first, last = (side_scores(frames[i]) for i in (0, -1))
    assert first["left"] > first["right"] and last["right"] > last["left"]
    best = tracks["best"]
    np.testing.assert_array_equal(best.found, tracks["left"].found)
    np.testing.assert_allclose(face_x(best)[best.found], left[best.found])


def test_without_face_option_the_rule_is_best(side_by_side, tmp_path):
    out = tmp_path / "default.h5"
    run_cli("align", side_by_side[0], "-o", out, "--quiet", check=True)
    assert read_faces(out).attrs["face_rule"] == "best"
    code, _, err = run_cli("align", side_by_side[0], "-o", tmp_path / "x.h5", "--face", "middle")
    assert code == 2 and "--face" in err and not (tmp_path / "x.h5").exists()


def aligned(video: Path, face: str, threads: int):
    """The whole video aligned in one chunk (two segments with threads=3: one decodes, two align)."""
    chunks = iter_aligned_chunks(video, AlignSettings(face=face), threads=threads, chunk_frames=FRAMES)
    parts = list(chunks)
    return np.concatenate([p.found for p in parts]), np.concatenate([face_x(p) for p in parts])


def test_the_other_person_is_never_taken_for_the_chosen_one(tmp_path):
    """The astronaut (left) is absent at first and again in frames 30-41, Grace Hopper (right) in 45-54.
    At first the one face in view is the leftmost: left follows Grace Hopper until a re-detection sees
    both faces (frame 20), then the astronaut. While the chosen person is away, nothing is aligned: the
    other person, though the only face (leftmost and rightmost), is not taken for them. With two aligning
    threads the second segment starts at frame 30, the astronaut away: aligned as one thread would."""
    video = write_video(tmp_path / "leaving.mp4", render(hidden=(((0, 12), (30, 42)), ((45, 55),))))
    left_found, left = aligned(video, "left", threads=3)
    assert (left[:20][left_found[:20]] > MIDDLE).all()  # the only face in view
    assert left_found[20:30].all() and not left_found[30:42].any() and left_found[42:].all()
    assert (left[20:][left_found[20:]] < MIDDLE).all()
    right_found, right = aligned(video, "right", threads=3)
    assert not right_found[45:55].any() and right_found[:45].mean() > 0.9 and right_found[55:].all()
    assert (right[right_found] > MIDDLE).all()
    one_thread = aligned(video, "left", threads=2)
    np.testing.assert_array_equal(one_thread[0], left_found)
    np.testing.assert_array_equal(one_thread[1], left)


def test_predict_follows_the_person_it_is_asked_for(side_by_side, tmp_path):
    """`predict --face` aligns the chosen person as `align --face` does: left equals best here (the
    astronaut is tracked throughout), right is another person and another trace."""
    from test_modelfile import cnn_and_rnn

    cnn_and_rnn(tmp_path)  # an untrained CNN+RNN at 32x32: the traces differ where the faces do
    traces = {}
    for rule in FACE_RULES:
        out = tmp_path / f"{rule}.csv"
        model = tmp_path / "rnn.safetensors"
        run_cli("predict", side_by_side[0], "--model", model, "-o", out, "--face", rule, "--quiet", check=True)
        traces[rule] = read_columns(out)["arousal"]
    np.testing.assert_array_equal(traces["best"], traces["left"])
    assert np.abs(traces["right"] - traces["left"]).max() > 1e-5  # 10x the CSV's 6 decimals


def test_the_counters_count_each_frame_once_when_a_segment_is_aligned_again(tmp_path):
    """The invariant of the aligner's counters: the detector ran on exactly the frames whose `detected`
    flag is set (one search of a frame: around the tracked face, then, unless that found it, the whole
    frame), so detected.sum() == detections_run <= frames decoded and
    max(region_searches, frame_searches) <= detections_run <= region_searches + frame_searches.
    With left/right and two aligning threads, the second segment of the video below is aligned again
    (its first pick could not be checked): only the second alignment's frames count, so the counters
    equal one thread's, which aligns every frame once and gives the same faces."""
    from affectflow.faces.landmark_models import landmark_model_path

    frames = render(hidden=(((0, 12), (30, 42)), ((45, 55),)))
    counters = {}
    for threads in (1, 2):
        aligner = _native.Aligner(
            str(landmark_model_path(5)), chip_size=32, padding=0.25, face_rule="left", threads=threads
        )
        result = aligner.process(frames)
        counts = tuple(getattr(aligner, key) for key in COUNTERS)
        detections, regions, whole = counts
        assert int(result["detected"].sum()) == detections <= len(frames), (threads, counts)
        assert max(regions, whole) <= detections <= regions + whole, (threads, counts)
        counters[threads] = counts, result["found"], result["detected"]
    np.testing.assert_array_equal(counters[2][1], counters[1][1])  # the same faces ...
    np.testing.assert_array_equal(counters[2][2], counters[1][2])  # ... the detector on the same frames
    assert counters[2][0] == counters[1][0]
    # The face file records them (over chunks: each later segment of a chunk starts with a search, so
    # the counts depend on the threads); they add up within its frames.
    video = write_video(tmp_path / "leaving.mp4", frames)
    for threads in (2, 3):  # one aligning thread, two
        out = tmp_path / f"left{threads}.h5"
        run_cli("align", video, "-o", out, "--face", "left", "--threads", threads, "--quiet", check=True)
        track = read_faces(out)
        detections, regions, whole = (int(track.attrs[key]) for key in COUNTERS)
        assert max(regions, whole) <= detections <= regions + whole and detections <= len(track) == FRAMES
        assert (track.source == _native.SOURCE_DETECTED).sum() <= detections
