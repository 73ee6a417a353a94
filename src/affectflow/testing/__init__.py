"""Test and benchmark helpers; no pipeline module imports them (tests/test_boundaries.py checks).

- :mod:`.reference`: the pure-Python reference aligner (dlib's own Python API)
  that tests and ``bench/align.py`` compare the native aligner against, and a
  moving-face test video;
- :mod:`.faces`: a small labelled corpus with ready-made face files, for the
  model, training and evaluation tests;
- :mod:`.detection`: how often dlib's HOG detector finds the face in a
  synthetic corpus (``affectflow corpus synth``);
- :mod:`.snakemake_output`: the job counts and shell commands Snakemake prints.
"""
