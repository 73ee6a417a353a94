"""The environment report (versions, device, settings that change the figures) and the module audit:
which modules beyond torch and numpy the figures loaded (a bare GPU node may lack them)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import torch

from .timing import error_text

# torch's own dependencies, which it imports lazily (sympy for symbolic shapes, triton on CUDA, ...).
TORCH_DEPENDENCIES = {
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "markupsafe",
    "filelock",
    "fsspec",
    "triton",
    "typing_extensions",
    "cython_runtime",
    "setuptools",
    "pkg_resources",
}
# This repository's own code: the package and the bench's sections.
OWN_MODULES = {"affectflow", __package__.split(".")[0]}
# Modules the figures must not load beyond what torch itself imports (a bare GPU node may lack them,
# or, for the extension and Snakemake, the figures must not depend on them).
FORBIDDEN_MODULES = ("affectflow._native", "snakemake", "tqdm", "scipy", "h5py", "cv2", "yaml", "pandas", "matplotlib")


def environment(device: torch.device) -> dict:
    env = {
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }
    if device.type != "cuda":
        env["name"] = f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        return env
    props = torch.cuda.get_device_properties(device)
    env.update(
        name=props.name,
        capability=f"{props.major}.{props.minor}",
        total_memory_gib=round(props.total_memory / 2**30, 2),
        multiprocessors=props.multi_processor_count,
        device_count=torch.cuda.device_count(),
    )
    smi = shutil.which("nvidia-smi")
    if smi:
        query = ["--query-gpu=driver_version,clocks.max.sm,power.limit", "--format=csv,noheader"]
        try:
            line = subprocess.run(
                [smi, *query, f"--id={device.index or 0}"], capture_output=True, text=True, timeout=15
            ).stdout.strip()
            env["nvidia_smi"] = line
        except Exception as error:  # noqa: BLE001
            env["nvidia_smi"] = f"error: {error_text(error)}"
    return env


def third_party_modules(names=None) -> list[str]:
    """Top-level non-stdlib modules among `names` (default: all loaded in this process)."""
    tops = {name.split(".")[0] for name in (sys.modules if names is None else names)}
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    return sorted(n for n in tops if n not in stdlib and not n.startswith("_") and n != "__main__")


def module_audit(baseline: set[str]) -> dict:
    """What the figures loaded since `baseline` (the modules after importing torch and numpy)."""
    added = set(sys.modules) - baseline
    before = set(third_party_modules(baseline)) | OWN_MODULES | TORCH_DEPENDENCIES
    return {
        "modules_loaded": third_party_modules(),
        "modules_beyond_torch_numpy": [m for m in third_party_modules(added) if m not in before],
        "forbidden_modules_loaded": [m for m in FORBIDDEN_MODULES if m in added],
    }
