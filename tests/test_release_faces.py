"""The release's own face crops as a face source (affectflow faces-from-release): a made-up cropped_aligned/
folder with missing images, over a real video in the Aff-Wild2 layout."""

from __future__ import annotations

import numpy as np
import pytest

from affectflow.contracts import AFFWILD2_CROPS_DIR
from affectflow.faces.facefile import SOURCES, alignment_settings, read_faces
from affectflow.faces.video import frame_times
from helpers import flat_frames, run_cli, write_video

FRAMES = 30
MISSING = {0, 1, 7, 8, 9, 20, 29}  # frames without a face: no image


@pytest.fixture()
def corpus(tmp_path):
    import cv2

    root = tmp_path / "Aff-Wild2"
    write_video(root / "videos" / "clip.mp4", flat_frames(FRAMES), 25.0)
    (root / "annotations/VA_Estimation_Challenge/Train_Set").mkdir(parents=True)
    (root / "annotations/VA_Estimation_Challenge/Train_Set/clip_left.txt").write_text("valence,arousal\n0.1,0.2\n")
    crops = root / AFFWILD2_CROPS_DIR / "clip_left"
    crops.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(FRAMES + 2):  # two images past the video's end: ignored
        if k not in MISSING:
            cv2.imwrite(str(crops / f"{k + 1:05d}.jpg"), rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))
    return root


def test_the_face_file_is_found_exactly_where_an_image_is(corpus, tmp_path):
    import cv2

    out = tmp_path / "faces" / "clip_left.h5"
    code, stdout, err = run_cli("faces-from-release", corpus, "clip_left", "-o", out, "--chip-size", 48)
    assert code == 0, err
    assert "2 image(s) past the last frame ignored" in stdout
    track = read_faces(out)
    crops = corpus / AFFWILD2_CROPS_DIR / "clip_left"
    present = np.array([(crops / f"{k + 1:05d}.jpg").is_file() for k in range(FRAMES)])
    np.testing.assert_array_equal(track.found, present)  # frame for frame
    assert track.found.sum() == FRAMES - len(MISSING)
    assert [SOURCES[s] for s in track.source] == ["release" if p else "lost" for p in present]
    np.testing.assert_array_equal(track.time, frame_times(corpus / "videos" / "clip.mp4"))
    assert track.chips.shape == (FRAMES, 48, 48) and not track.chips[~present].any()
    image = cv2.imread(str(crops / "00003.jpg"))
    expected = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(track.chips[2], expected)  # frame 2 is image 00003, grey and resized
    assert track.attrs["face_source"] == "release" and track.attrs["face_rule"] == "left"
    assert alignment_settings(out)["landmark_model"] == "release"  # training will not mix it with dlib's faces


def test_missing_crops_are_refused_and_nothing_is_written(corpus, tmp_path):
    import shutil

    shutil.rmtree(corpus / AFFWILD2_CROPS_DIR / "clip_left")
    out = tmp_path / "clip_left.h5"
    code, _, err = run_cli("faces-from-release", corpus, "clip_left", "-o", out)
    assert code == 2 and "no crop folder for clip_left" in err.strip().splitlines()[-1]
    assert not out.exists()
