"""GPU check: the paper-size networks' training and inference throughput on one CUDA device.

Written to run once on a bare CUDA node (Python with torch, numpy; nothing from this
repository installed, no network):

    PYTHONPATH=src python3 bench/gpu.py --out gpu.json

Everything runs on synthetic data made in memory (uint8 96x96 chips with some structure,
labels in [-1, 1]; 300-d frame features); the figures import only torch, numpy, affectflow's
torch-only modules and this script's sections (bench/gpu_sections, found next to it): no C++
extension, no Snakemake, no tqdm, no scipy. Each section is time-boxed (fixed warm-up and
timed step counts, each timed loop also capped in seconds, the device synchronized around
every timing); the whole run stays under --budget-s (default 450 s, 7.5 minutes on an H100).
The networks, variants and optimizer settings are the package's defaults (CNNConfig,
RNNConfig, TrainSettings, contracts.CNN_VARIANTS).

Sections (bench/gpu_sections/<name>.py, in this order; --sections picks some):
  paper_recipe    does the paper's recipe (lr 0.01, authors' init) train at paper size? loss
                  relative to the labels' variance for 3 lrs x clipping off/on x 3 draws of k.
  cnn_train       training images/s of variants plain and AD, AMP on/off x channels-last on/off; ratios.
  input_pipeline  gather + scale + augment + normalize alone vs the full training step.
  extract         affectflow.nets.tensors.cnn_forward frames/s (chips from host numpy and from a device tensor).
  rnn_train       FrameRNN (h=100, W=100, batch 128, 300-d inputs, tanh) training windows/s.
  rnn_infer       affectflow.nets.tensors.rnn_window_predictions windows/s.
  workflow        `snakemake --cores 4 --configfile config/tiny.yaml --config device=cuda` in a
                  temporary directory, wall time; only where snakemake and the extension
                  affectflow._native are importable (checked in a subprocess), else skipped.

Without CUDA it exits with status 2 ("no CUDA device: ...") and writes nothing, unless
--allow-cpu: then every section runs on the CPU with tiny step counts (figures labelled
CPU; at paper size the AMP rows are skipped there: bfloat16 autocast took ~5 min a step
on a 2-core machine); --quick also shrinks the networks and data (the test suite uses
--allow-cpu --quick --skip-workflow). Exit status 1 when a section failed (the JSON
is still written, with the error); after each section the figures so far are written
with "partial": true.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = "affectflow-bench-gpu/1"
# In run order, one module bench/gpu_sections/<name>.py each; the workflow last, with what is left of the budget.
SECTIONS = ("paper_recipe", "cnn_train", "input_pipeline", "extract", "rnn_train", "rnn_infer", "workflow")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="write every figure as JSON to this file")
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="without CUDA, run every section on the CPU with tiny step counts (figures labelled CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny networks and data (for tests)")
    parser.add_argument("--skip-workflow", action="store_true", help="do not run the tiny Snakemake workflow")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        metavar="NAME",
        help="run only these (default all; always in the order above)",
    )
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop (default 100 on CUDA, 2 on CPU)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="warm-up steps per loop (default 10 on CUDA, 1 on CPU)"
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=450.0,
        help="wall-time budget of the whole run; the workflow gets what is left (default 450)",
    )
    parser.add_argument("--workflow-timeout", type=float, default=300.0, help="cap on the workflow's wall time (s)")
    parser.add_argument("--workflow-cores", type=int, default=4)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        import numpy  # noqa: F401
        import torch
    except ImportError as error:
        print(f"no CUDA device: torch/numpy not importable ({error})", file=sys.stderr)
        return 2
    baseline_modules = set(sys.modules)
    if torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    elif args.allow_cpu:
        device = torch.device("cpu")
    else:
        print(
            f"no CUDA device: torch {torch.__version__} (CUDA build {torch.version.cuda}) reports "
            "torch.cuda.is_available() == False; pass --allow-cpu to run the sections on the CPU",
            file=sys.stderr,
        )
        return 2

    # the sections next to this script, and the package as PYTHONPATH=src gives it, in case it was left out
    for path in (HERE, HERE.parent / "src"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    partial: dict = {"schema": SCHEMA, "label": "GPU" if device.type == "cuda" else "CPU"}
    try:
        return run(args, device, started, baseline_modules, partial)
    except BaseException as error:  # noqa: BLE001 - run once on a lent node: keep what was measured
        if isinstance(error, KeyboardInterrupt):
            partial["fatal_error"] = "interrupted"
        else:
            traceback.print_exc()
            partial["fatal_error"] = traceback.format_exc()[-4000:]
        partial["partial"] = True
        partial["total_s"] = round(time.perf_counter() - started, 2)
        write_json(args.out, partial)
        print(
            f"!! bench/gpu.py stopped early: {type(error).__name__}: {error}; what was measured is in {args.out}",
            file=sys.stderr,
        )
        return 1


def run(args, device, started: float, baseline_modules: set, result: dict) -> int:
    from gpu_sections.bench import Bench
    from gpu_sections.environment import environment, module_audit
    from gpu_sections.timing import overall_peaks

    env = result["environment"] = environment(device)
    print(
        f"bench/gpu.py on {env['name']}: torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}"
        + ("" if device.type == "cuda" else "  [CPU: tiny step counts, not GPU figures]"),
        flush=True,
    )
    bench = Bench(args, device, result, started)
    s = bench.s
    result.update(
        command=" ".join(["bench/gpu.py"] + sys.argv[1:]),
        settings=dict(s, quick=bool(args.quick)),
        sections={},
        errors={},
    )
    print(
        f"   data: {s['frames']} synthetic uint8 chips {s['chip_size']}x{s['chip_size']} on the device "
        f"({bench.elapsed():.1f} s); {s['warmup']} warm-up + {s['steps']} timed steps per loop",
        flush=True,
    )
    sections = {name: importlib.import_module(f"gpu_sections.{name}") for name in SECTIONS}
    for name in SECTIONS[:-1]:  # every section but the workflow, in order
        if name in args.sections:
            run_section(bench, name, sections[name])
    # What the figures needed, before the workflow (last, in a subprocess) gets what is left of the budget.
    result["peak_memory"] = overall_peaks()
    result.update(module_audit(baseline_modules))
    result["core_s"] = round(bench.elapsed(), 2)
    result["workflow"] = None
    write_json(args.out, dict(result, partial=True))
    if "workflow" in args.sections:
        run_section(bench, "workflow", sections["workflow"])
    result["total_s"] = round(bench.elapsed(), 2)

    print_summary(result, sections)
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    return 1 if any(v.startswith("error") for v in result["sections"].values()) else 0


def run_section(bench, name: str, section) -> None:
    """section.run(bench), its status ("ran", its own "skipped: ..."/"error: ...", or the exception
    it raised) in result["sections"]; the figures so far written to --out with "partial": true."""
    from gpu_sections.timing import error_text, free_device, peak_mib, reset_peak

    if section.HEADING:
        print(section.HEADING.format(**bench.s), flush=True)
    started = time.perf_counter()
    reset_peak(bench.device)
    try:
        status = section.run(bench)
        peak_mib(bench.device)
        bench.result["sections"][name] = status or "ran"
    except Exception as error:  # noqa: BLE001 - one failed section must not lose the others
        bench.result["sections"][name] = f"error: {error_text(error)}"
        bench.result["errors"][name] = traceback.format_exc()[-4000:]
        print(f"!! {name} failed: {error_text(error)}", file=sys.stderr, flush=True)
    finally:
        free_device(bench.device)
    print(f"   [{name}: {time.perf_counter() - started:.1f} s, total {bench.elapsed():.0f} s]", flush=True)
    write_json(bench.args.out, dict(bench.result, partial=True))


def print_summary(result: dict, sections: dict) -> None:
    env = result["environment"]
    print(
        f"\n== affectflow GPU check ({result['label']} figures): {env.get('name')}; torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}; total {result['total_s']:.0f} s"
    )
    for section in sections.values():
        section.summary(result)
    mem = result["peak_memory"]
    print(f"Peak memory: device {mem['device_mib']} MiB, host RSS {mem['host_rss_mib']} MiB")
    print("\nSections:")
    for name in SECTIONS:
        print(f"   {name:15s} {result['sections'].get(name, 'not run')}")
    print(f"Modules the figures loaded beyond torch/numpy: {result.get('modules_beyond_torch_numpy')}")
    if result.get("forbidden_modules_loaded"):
        print(f"!! modules loaded that a bare node may lack: {result['forbidden_modules_loaded']}")


def write_json(path: Path, data: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
