"""Aff-Wild2's labels go by decoded frame, whatever the frames' timestamps: a video that starts late (a B-frame
delay in an AVI, the issue's case) and one whose frame rate varies, both written here with FFmpeg and checked
with ffprobe, keep line k on decoded frame k; a label shift counts decoded frames; `corpus check` notes their
timing and still refuses what breaks the rule; the label-shift fit on a bounded set of frames."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from affectflow.data import affwild2
from affectflow.data.corpus import open_corpus
from affectflow.data.label_shift import fit_label_shift, shift_fit_rows
from affectflow.data.labels import frame_labels, scored_labels, scored_predictions
from affectflow.errors import AffectflowError
from affectflow.faces.video import frame_times
from helpers import run_cli

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="FFmpeg")

TRAIN = "annotations/VA_Estimation_Challenge/Train_Set"
DEV = "annotations/VA_Estimation_Challenge/Validation_Set"
OFFSET_FRAMES, VFR_FRAMES = 50, 120
# the variable-rate video: 25 fps for 60 frames, then 30 fps (timestamps on a 1/600 s clock)
VFR_PTS = "if(lt(N,60),N/25,2.4+(N-60)/30)"


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True, timeout=60)


def probed_times(video: Path) -> np.ndarray:
    """Every frame's timestamp as ffprobe decodes it (NaN where it has none: an AVI's last B-frames)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=best_effort_timestamp_time"]
        + ["-of", "csv=p=0", str(video)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    cells = [line.strip().strip(",") for line in out.split()]
    return np.array([np.nan if cell == "N/A" else float(cell) for cell in cells], np.float64)


def lines_with_gaps(count: int, seed: int, missing: range) -> list[tuple[float, float]]:
    rng = np.random.default_rng(seed)
    values = np.round(np.clip(np.cumsum(rng.normal(0, 0.1, (count, 2)), axis=0), -1, 1), 3)
    values[list(missing)] = -5
    return [(float(v), float(a)) for v, a in values]


def write_labels(path: Path, lines) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("valence,arousal\n" + "".join(f"{v:g},{a:g}\n" for v, a in lines))


@pytest.fixture(scope="module")
def timing(tmp_path_factory) -> Path:
    """offset.avi (MPEG-4 with B-frames in AVI: its first frame is decoded at 0.04 s, two label lines short,
    a -5 span) and vfr.mp4 (25 then 30 fps, three label lines too many, a -5 span)."""
    root = tmp_path_factory.mktemp("timing") / "Aff-Wild2"
    (root / "videos").mkdir(parents=True)
    source = ["-f", "lavfi", "-i", "testsrc=size=64x48:rate=25"]
    ffmpeg(*source, "-frames:v", OFFSET_FRAMES, "-c:v", "mpeg4", "-bf", 2, root / "videos/offset.avi")
    ffmpeg(
        *source,
        *("-frames:v", VFR_FRAMES, "-vf", f"settb=1/600,setpts='{VFR_PTS}/TB'", "-fps_mode", "vfr"),
        *("-enc_time_base", "1/600", "-c:v", "mpeg4", "-video_track_timescale", 600, root / "videos/vfr.mp4"),
    )
    write_labels(root / TRAIN / "offset.txt", lines_with_gaps(OFFSET_FRAMES - 2, 1, range(10, 16)))
    write_labels(root / DEV / "vfr.txt", lines_with_gaps(VFR_FRAMES + 3, 2, range(33, 40)))
    return root


def test_the_videos_really_have_the_property(timing):
    offset = probed_times(timing / "videos/offset.avi")
    assert len(offset) == OFFSET_FRAMES and offset[0] == pytest.approx(0.04)  # ffprobe: starts one frame late
    vfr = probed_times(timing / "videos/vfr.mp4")
    assert len(vfr) == VFR_FRAMES and np.isfinite(vfr).all()
    steps = np.diff(vfr)
    assert 1 / steps.max() < 25.5 and 1 / steps.min() > 29.5  # ffprobe: both 25 and 30 fps
    assert frame_times(timing / "videos/offset.avi")[0] == pytest.approx(0.04)  # and so says affectflow's decoder


def nearest_line(times: np.ndarray, k: int, shift: float) -> int | None:
    """The test's own statement of the rule: the decoded frame nearest t_k + shift (None off the video)."""
    target = times[k] + shift
    step_before, step_after = times[1] - times[0], times[-1] - times[-2]
    if target < times[0] - step_before / 2 or target >= times[-1] + step_after / 2:
        return None
    distance = np.abs(times - target)
    return int(np.flatnonzero(distance <= distance.min() + 1e-9)[-1])  # a tie: the later frame


def file_lines(path: Path) -> list[tuple[float, float]]:
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["valence", "arousal"]
    return [(float(v), float(a)) for v, a in rows[1:]]


@pytest.mark.parametrize("subject, video, labels", [("offset", "offset.avi", TRAIN), ("vfr", "vfr.mp4", DEV)])
def test_every_line_lands_on_its_own_decoded_frame(timing, subject, video, labels):
    code, out, err = run_cli("corpus", "labels", timing, subject)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    times = probed_times(timing / "videos" / video)
    lines = file_lines(timing / labels / f"{subject}.txt")
    assert len(rows) == len(times)
    for k, row in enumerate(rows):  # every decoded frame k: line k, -5 and past a short file's end: none
        assert int(row["frame"]) == k
        assert np.isnan(times[k]) or float(row["time"]) == pytest.approx(times[k], abs=1e-3)
        for column, dimension in enumerate(("valence", "arousal")):
            if k >= len(lines) or lines[k][column] == -5:
                assert row[dimension] == "", (k, row)
            else:
                assert float(row[dimension]) == lines[k][column], (k, row)


@pytest.mark.parametrize("shift", [0.11, 0.23, -0.13, 0.51])  # no ties: none lands midway
@pytest.mark.parametrize("subject", ["offset", "vfr"])
def test_a_shift_takes_the_line_of_the_decoded_frame_nearest_t_plus_s(timing, subject, shift):
    recording = open_corpus(timing).recording(subject)
    times = frame_times(recording.video)
    lines = np.array(file_lines(recording.labels["valence"]))[:, 0]
    labels = frame_labels(recording, "valence", times, shift)  # what training, evaluation and auto use
    if subject == "offset":  # the decoder repeats the last timestamp of the AVI's flushed B-frame
        assert times[-1] == times[-2]
        times = times.copy()
        times[-1] = times[-2] + 0.04
    for k in range(len(times)):
        line = nearest_line(times, k, shift)
        if line is None or line >= len(lines) or lines[line] == -5:
            assert np.isnan(labels[k]), (k, labels[k])
        else:
            assert labels[k] == np.float32(lines[line]), (k, line)
    # at shift 0 it is line k, exactly (a bare offset or a rate change never moves a line)
    own = frame_labels(recording, "valence", times)
    expected = np.array([lines[k] if k < len(lines) and lines[k] != -5 else np.nan for k in range(len(times))])
    np.testing.assert_array_equal(own, expected.astype(np.float32))


def test_scoring_pairs_each_line_with_the_frame_that_trained_on_it(timing):
    recording = open_corpus(timing).recording("vfr")
    times = frame_times(recording.video)
    shift = 0.22
    predictions = np.arange(len(times), dtype=np.float32)  # frame j predicts j
    label_times, gold = scored_labels(recording, "valence", times)
    scored = scored_predictions(recording, times, predictions, label_times, shift)
    frame_of = {float(t): k for k, t in enumerate(times)}
    trained = affwild2.decoded_lines(times, shift)
    for t, prediction in zip(label_times, scored):
        k = frame_of[float(t)]
        before = np.flatnonzero(trained <= k)
        assert prediction == (before[-1] if len(before) else 0), k  # the last frame whose line is at or before k
        if (trained == k).sum() == 1:
            assert trained[int(prediction)] == k  # the frame trained on line k is the one scored on it


def test_corpus_check_notes_the_timing_and_passes(timing):
    code, out, err = run_cli("corpus", "check", "-q", timing)
    assert code == 0, err
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2, out
    assert notes[0] == f"note: {timing / 'videos/offset.avi'}: starts at 0.040 s"
    assert notes[1].startswith(f"note: {timing / 'videos/vfr.mp4'}: frame rate varies ")
    low, high = (float(x) for x in notes[1].split("varies ")[1].removesuffix(" fps").split("-"))
    assert low < 25.5 and high > 29.5
    assert out.strip().splitlines()[-1] == f"{timing}: 2 subjects ok (affwild2 layout)"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("valence,arousal\n" + "0.1,0.2\n" * (OFFSET_FRAMES - 6), f"{OFFSET_FRAMES - 6} label lines"),
        ("valence,arousal\n" + "0.1,1.2\n" * OFFSET_FRAMES, "neither in [-1, 1] nor -5"),
        ("arousal,valence\n" + "0.1,0.2\n" * OFFSET_FRAMES, "expected the header 'valence,arousal'"),
    ],
)
def test_corpus_check_still_refuses_what_breaks_the_rule(timing, tmp_path, text, problem):
    root = tmp_path / "c"
    shutil.copytree(timing, root)
    (root / TRAIN / "offset.txt").write_text(text)
    code, out, err = run_cli("corpus", "check", "-q", root)
    assert code == 2, out
    assert str(root / TRAIN / "offset.txt") in err and problem in err


# --------------------------------------------------------------------------- the label-shift fit, bounded


def test_shift_fit_rows_keep_a_stated_bound():
    found = [np.arange(1000) % 3 != 0, np.ones(500, bool), np.zeros(10, bool)]
    assert [len(r) for r in shift_fit_rows(found, limit=10_000)] == [666, 500, 0]  # under the bound: all
    rows = shift_fit_rows(found, limit=100)
    assert sum(len(r) for r in rows) <= 100 + len(found)
    assert all(found[i][r].all() for i, r in enumerate(rows))
    assert np.array_equal(rows[1], np.arange(0, 500, 12))  # ceil(1166 / 100) = 12: every 12th found frame


def test_the_fit_by_decoded_frame_finds_the_shift_on_a_subsample(timing):
    """Descriptors that carry the label of the frame nearest t + 0.16 s on the variable-rate video: the fit
    finds 0.16 from every frame and from every 2nd one (`rows`), as decoded frames count it."""
    recording = open_corpus(timing).recording("vfr")
    times = frame_times(recording.video)
    target = frame_labels(recording, "valence", times, 0.16)
    rng = np.random.default_rng(0)
    signal = np.where(np.isfinite(target), target, 0.0)
    descriptors = np.column_stack([signal + rng.normal(0, 0.01, len(times)), rng.normal(0, 1, (len(times), 3))])
    candidates = [0.0, 0.08, 0.16, 0.24, 0.32]
    full = fit_label_shift([descriptors], [times], [recording], "valence", candidates, ridge=0.01)
    assert full["shift"] == 0.16
    rows = np.arange(0, len(times), 2)
    half = fit_label_shift([descriptors[rows]], [times], [recording], "valence", candidates, ridge=0.01, rows=[rows])
    assert half["shift"] == 0.16 and half["frames"] < full["frames"]
    with pytest.raises(AffectflowError, match="need the time of every decoded frame"):
        fit_label_shift([descriptors[rows]], [times[rows]], [recording], "valence", candidates, ridge=0.01)
