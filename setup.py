"""Build of affectflow and its C++ extension ``affectflow._native``.

dlib's face detector, shape predictor and chip extraction are header
templates, so they are compiled into our extension with our flags; only the
few dlib translation units we need are compiled (no cmake, X11, BLAS, CUDA).

dlib's headers are found, in order, in
  1. ``$DLIB_SOURCE_DIR`` (a dlib source tree: it holds ``dlib/``),
  2. ``pkg-config dlib-1`` (Debian's libdlib-dev, conda-forge's dlib),
  3. the dlib source distribution that pip downloads into ``.deps/``.

The target CPU is x86-64-v3 where the build host has AVX2 and FMA, else
x86-64-v2; ``AFFECTFLOW_MARCH`` overrides it (e.g. ``native``, ``x86-64``).
Plain ``-mavx`` is never used: it makes dlib's HOG about 2x slower.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

ROOT = Path(__file__).resolve().parent
DLIB_VERSION = "20.0.1"
DEPS_DIR = ROOT / ".deps"

# dlib translation units the aligner needs (the rest of dlib is headers).
# (The embedded HOG detector is base64 + entropy coded; threads are std::thread / OpenMP.)
DLIB_UNITS = [
    "dlib/base64/base64_kernel_1.cpp",
    "dlib/entropy_decoder/entropy_decoder_kernel_2.cpp",
]


def _log(message: str) -> None:
    print(f"[affectflow build] {message}", file=sys.stderr, flush=True)


def _dlib_from_env() -> Path | None:
    value = os.environ.get("DLIB_SOURCE_DIR")
    if not value:
        return None
    root = Path(value)
    if not (root / "dlib" / "image_processing" / "frontal_face_detector.h").is_file():
        sys.exit(f"DLIB_SOURCE_DIR={value} does not hold dlib/image_processing/frontal_face_detector.h")
    return root


def _dlib_from_pkg_config() -> Path | None:
    if shutil.which("pkg-config") is None:
        return None
    result = subprocess.run(["pkg-config", "--variable=includedir", "dlib-1"], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    include = Path(result.stdout.strip())
    if (include / "dlib" / "image_processing" / "frontal_face_detector.h").is_file():
        return include
    return None


def _dlib_from_sdist() -> Path:
    """Download dlib's source distribution with pip (headers only, no build)."""
    tree = DEPS_DIR / f"dlib-{DLIB_VERSION}"
    if (tree / "dlib" / "image_processing" / "frontal_face_detector.h").is_file():
        return tree
    DEPS_DIR.mkdir(exist_ok=True)
    archive = DEPS_DIR / f"dlib-{DLIB_VERSION}.tar.gz"
    if not archive.is_file():
        _log(f"downloading dlib {DLIB_VERSION} source distribution (headers only)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                "dlib",
                "--no-build-isolation",
                "--dest",
                str(DEPS_DIR),
                f"dlib=={DLIB_VERSION}",
            ],
            check=True,
        )
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(f"dlib-{DLIB_VERSION}/dlib/")]
        tar.extractall(DEPS_DIR, members=members, filter="data")
    return tree


def find_dlib() -> tuple[Path, Path | None]:
    """Return (include dir, source dir holding dlib's .cpp units or None)."""
    for how, finder in (("DLIB_SOURCE_DIR", _dlib_from_env), ("pkg-config dlib-1", _dlib_from_pkg_config)):
        root = finder()
        if root is not None:
            has_units = all((root / unit).is_file() for unit in DLIB_UNITS)
            _log(f"dlib headers from {how}: {root}")
            if has_units:
                return root, root
            # Debian's libdlib-dev ships headers without the .cpp units.
            _log("those headers lack dlib's .cpp units; taking the units from the source distribution")
            return root, _dlib_from_sdist()
    tree = _dlib_from_sdist()
    _log(f"dlib headers from the source distribution: {tree}")
    return tree, tree


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def choose_march() -> str | None:
    override = os.environ.get("AFFECTFLOW_MARCH")
    if override:
        choice = override
    elif platform.machine() not in ("x86_64", "AMD64"):
        choice = None
    elif {"avx2", "fma", "bmi2"} <= _cpu_flags():
        choice = "x86-64-v3"
    else:
        choice = "x86-64-v2"
    _log(f"target CPU: -march={choice}" if choice else "target CPU: compiler default")
    return choice


def make_extension() -> Pybind11Extension:
    include_dir, units_dir = find_dlib()
    march = choose_march()
    compile_args = ["-O3", "-fopenmp", "-DDLIB_NO_GUI_SUPPORT", "-DNDEBUG", "-DDLIB_DISABLE_ASSERTS"]
    if march:
        compile_args.append(f"-march={march}")
    sources = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.cpp"))
    if units_dir is not None:
        # setuptools rejects absolute source paths
        sources += [os.path.relpath(units_dir / unit, ROOT) for unit in DLIB_UNITS]
    return Pybind11Extension(
        "affectflow._native",
        sources=sources,
        include_dirs=[str(include_dir), str(ROOT / "csrc")],
        extra_compile_args=compile_args,
        extra_link_args=["-fopenmp", "-lpthread"],
        cxx_std=17,
    )


setup(ext_modules=[make_extension()], cmdclass={"build_ext": build_ext})
