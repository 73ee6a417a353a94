"""The embedded synthetic corpus (docs/design.md, section 5), written in the AV+EC 2015 layout.

No licensed data can ship, so ``affectflow corpus synth`` renders face videos
from the real frontal face photographs that installed packages carry:

- ``skimage.data.astronaut()`` (scikit-image): Eileen Collins, NASA portrait,
  "no known copyright restrictions, released into the public domain"
  (scikit-image's own note; NASA Great Images database).
- ``matplotlib/mpl-data/sample_data/grace_hopper.jpg`` (matplotlib): Grace
  Hopper, official U.S. Navy portrait (1984), a work of the U.S. federal
  government and so in the public domain.

Nothing else usable is installed: scikit-image's ``lfw_subset`` faces are
25x25 pixels and ``camera`` is a profile; Debian's opencv-doc (a 95 MB
download, not installed) and libdlib's examples hold a few small faces in
photographs of unclear licence. Two photographs cannot give one person per
subject, so every subject gets its own *identity* made from one of them by
identity-specific geometric warps (face width and height, eye spacing, nose
length, mouth position and width, chin), mirroring, skin tone and gamma, and
its own background: dev and test identities differ from every training one,
though they share the two underlying people.

dlib's HOG detector and 68-point shape model (from face_recognition_models)
run once per source photograph and place the warps. Per frame:

- valence and arousal are smooth random traces in [-1, 1]; the expression
  follows them through a geometric warp built as a linear combination of
  precomputed displacement fields (mouth corners up/down and mouth opening
  with valence, brows and eye opening with arousal), applied with cv2.remap;
- the expression gets per-frame jitter, and the gold standard written to the
  ARFF files lags the expression by ``label_delay`` seconds (1-2 s per
  subject), as human annotations do: both make a single frame a noisy cue
  and a window of frames a better one;
- head motion (translation, roll, scale), lighting drift (gain and a
  directional gradient), sensor noise and varying blur;
- a few short spans lose the face (it leaves the frame or is covered).

Everything follows from the seed and the subject's index: the same seed
gives byte-identical ARFF files and identical decoded frames. The spans,
delays and identity settings are written to ``synthetic.json`` beside the
corpus so that tests (and curious users) know which frames have a face.

The modules, in the order a subject is made:

- :mod:`.plan`: settings, subject plans (identity, label delay, face-lost
  spans) and the valence/arousal traces;
- :mod:`.identity`: the source photographs, their landmarks, and a subject's
  face (identity warp, skin tone, alpha mask, background);
- :mod:`.expression`: the displacement fields that valence/arousal drive;
- :mod:`.render`: head motion, lighting, noise and blur, frame by frame;
- :mod:`.writer`: the corpus folder (videos, ARFF gold standard, metadata), and where each
  subject's files go before it is written (:func:`planned_recordings`: the workflow plans on it);
- :mod:`.cli`: the ``affectflow corpus synth`` subcommand.

Random streams: subject ``i`` draws its plan from ``default_rng([seed, i, 1])``,
its rendering from ``[seed, i, 2]`` and its traces from ``[seed, i, 3]``.
"""

from __future__ import annotations

from .expression import EXPRESSIONS, expression_coefficients
from .identity import PHOTOS, Identity, build_identity, identity_field, photo_landmarks, random_identity
from .plan import (
    SubjectPlan,
    SubjectTraces,
    SynthSettings,
    face_lost_spans,
    face_visible,
    plan_subject,
    smooth_trace,
    subject_names,
    subject_traces,
)
from .render import EYE_DISTANCE, render_frames
from .writer import METADATA_FILE, arff_text, planned_recordings, read_metadata, synthesize_corpus, write_subject

__all__ = [
    "EXPRESSIONS",
    "EYE_DISTANCE",
    "METADATA_FILE",
    "PHOTOS",
    "Identity",
    "SubjectPlan",
    "SubjectTraces",
    "SynthSettings",
    "arff_text",
    "build_identity",
    "expression_coefficients",
    "face_lost_spans",
    "face_visible",
    "identity_field",
    "photo_landmarks",
    "plan_subject",
    "planned_recordings",
    "random_identity",
    "read_metadata",
    "render_frames",
    "smooth_trace",
    "subject_names",
    "subject_traces",
    "synthesize_corpus",
    "write_subject",
]
