"""``affectflow figures --trace LABEL CSV [--trace ...] --histories TSV... --figure3 PNG --curves PNG`` draws
the paper's Figure 3 (predicted valence of single-frame CNN and CNN+RNN against the gold standard for one
subject) and the training curves (loss and selection CCC by epoch).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..contracts import RUN_FILE
from ..errors import fail
from ..io import OutputPath, atomic_path


def add_commands(subparsers) -> None:
    figures = subparsers.add_parser(
        "figures",
        help="draw Figure 3 (predicted vs gold trace) and training curves",
        description="Figure 3: predictions of several models against the gold standard for one "
        "subject (CSV files time,prediction,gold); training curves from history.tsv files.",
    )
    figures.add_argument(
        "--trace",
        nargs=2,
        action="append",
        metavar=("LABEL", "CSV"),
        required=True,
        help="a model's prediction CSV for the subject (repeatable)",
    )
    figures.add_argument("--histories", nargs="+", type=Path, required=True, help="history.tsv files")
    figures.add_argument("--figure3", required=True, type=OutputPath, help="output PNG of Figure 3")
    figures.add_argument(
        "--smoothness",
        type=OutputPath,
        default=None,
        help="output JSON: mean |first difference| of each trace of Figure 3",
    )
    figures.add_argument("--curves", required=True, type=OutputPath, help="output PNG of the training curves")
    figures.set_defaults(handler=_run_figures)


def read_trace(path: Path):
    """A predictions CSV (time, prediction, gold) as three float arrays."""
    import numpy as np

    try:
        data = np.genfromtxt(path, delimiter=",", names=True, dtype=float)
    except OSError:
        raise fail(path, "prediction trace is missing") from None
    names = data.dtype.names or ()
    missing = {"time", "prediction", "gold"} - set(names)
    if missing:
        raise fail(path, f"prediction trace lacks columns {sorted(missing)}")
    data = np.atleast_1d(data)
    return data["time"], data["prediction"], data["gold"]


def read_history(path: Path) -> dict[str, list[float]]:
    lines = Path(path).read_text().splitlines() if Path(path).exists() else None
    if not lines:
        raise fail(path, "training history is missing or empty")
    header = lines[0].split("\t")
    columns: dict[str, list[float]] = {name: [] for name in header}
    for line in lines[1:]:
        for name, cell in zip(header, line.split("\t")):
            try:
                columns[name].append(float(cell))
            except ValueError:
                columns[name].append(math.nan)
    return columns


def _run_label(history: Path) -> tuple[str, str]:
    """(kind, label) of a run from its folder: results/{cnn|rnn}/{model}/seed{S}/history.tsv."""
    run_dir = history.parent
    kind = run_dir.parent.parent.name
    run_json = run_dir / RUN_FILE
    if run_json.exists():
        kind = json.loads(run_json.read_text()).get("kind", kind)
    return kind, f"{run_dir.parent.name}/{run_dir.name}"


def draw_figure3(traces: list[tuple[str, Path]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6))
    gold_drawn = False
    for label, path in traces:
        time, prediction, gold = read_trace(path)
        if not gold_drawn:
            ax.plot(time, gold, color="black", linewidth=1.6, label="gold standard")
            gold_drawn = True
        ax.plot(time, prediction, linewidth=1.0, label=label)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("valence")
    ax.set_title(f"Predicted valence against the gold standard: {Path(traces[0][1]).stem}")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def draw_curves(histories: list[Path], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs: dict[str, list[tuple[str, dict]]] = {}
    for path in histories:
        kind, label = _run_label(path)
        runs.setdefault(kind, []).append((label, read_history(path)))
    kinds = sorted(runs)
    fig, axes = plt.subplots(len(kinds), 2, figsize=(11, 3.4 * len(kinds)), squeeze=False)
    for row, kind in enumerate(kinds):
        loss_ax, ccc_ax = axes[row]
        for label, columns in runs[kind]:
            epochs = columns.get("epoch") or list(range(1, len(columns.get("train_loss", [])) + 1))
            if "train_loss" in columns:
                loss_ax.plot(epochs, columns["train_loss"], marker="o", markersize=3, label=label)
            ccc_column = next((c for c in ("dev_ccc", "val_ccc") if c in columns), None)
            if ccc_column:
                ccc_ax.plot(epochs, columns[ccc_column], marker="o", markersize=3, label=label)
        loss_ax.set_title(f"{kind.upper()}: training loss")
        ccc_ax.set_title(f"{kind.upper()}: model-selection CCC")
        for ax in (loss_ax, ccc_ax):
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        ccc_ax.legend(fontsize="x-small", ncol=2)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def trace_smoothness(traces: list[tuple[str, Path]]) -> dict:
    """Mean |first difference| of each prediction trace (and of the gold standard) on Figure 3's subject.

    A temporal model should be smoother than the single-frame CNN; `ratio_to_first` compares
    each trace with the first one (the CNN).
    """
    import numpy as np

    result = {"subject": Path(traces[0][1]).stem, "traces": {}}
    for label, path in traces:
        _, prediction, gold = read_trace(path)
        result["traces"][label] = float(np.nanmean(np.abs(np.diff(prediction))))
        result.setdefault("gold", float(np.nanmean(np.abs(np.diff(gold)))))
    first = result["traces"][traces[0][0]]
    result["ratio_to_first"] = {
        label: (value / first if first > 0 else math.nan) for label, value in result["traces"].items()
    }
    return result


def _run_figures(args: argparse.Namespace) -> int:
    draw_figure3([(label, Path(path)) for label, path in args.trace], args.figure3)
    if args.smoothness is not None:
        smoothness = trace_smoothness([(label, Path(path)) for label, path in args.trace])
        with atomic_path(args.smoothness) as tmp:
            tmp.write_text(json.dumps(smoothness, indent=2) + "\n")
        for label, value in smoothness["traces"].items():
            print(
                f"Figure 3 smoothness, {smoothness['subject']}: {label}: mean |first difference| {value:.4f} "
                f"({smoothness['ratio_to_first'][label]:.2f}x the first trace)"
            )
    draw_curves(args.histories, args.curves)
    print(args.figure3)
    print(args.curves)
    return 0
