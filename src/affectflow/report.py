"""The paper's Tables 1-5 and Figure 3 from the workflow's metrics, predictions and histories.

``affectflow tables --config CONFIG --out-dir DIR`` writes DIR/table{1..5}.{md,tsv} (and table6 with two
or more dimensions: Table 1's rows' CCC per dimension and P_VA).
CONFIG is the workflow's config (YAML or JSON; the workflow's rule ``tables_config`` writes the
keys the tables read), from which :func:`affectflow.tables_layout.tables_layout` derives the
layout: per table, the rows and each row's metrics files (one per seed). ``--layout LAYOUT``
(JSON text, or ``@file.json``) gives a layout directly:

    {"partition": "dev", "dimension": "valence", "rnn_features": "CNN+AD",
     "rnn_base": {...}, "tables": {"1": [{"label": "CNN", "key": "cnn:plain",
                                         "metrics": ["results/metrics/cnn/plain/seed0.json"]}, ...]}}

A cell is the mean over seeds, with +- the sample standard deviation where there is
more than one seed. Table 5 puts our rows beside results quoted from the paper, Table 6 beside the
ABAW challenges' anchors on Aff-Wild2 (quoted, never computed).

``affectflow figures --trace LABEL CSV [--trace ...] --histories TSV... --figure3 PNG --curves PNG``
draws the paper's Figure 3 (predicted valence of single-frame CNN and CNN+RNN against the
gold standard for one subject) and the training curves (loss and selection CCC by epoch).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .contracts import CNN_LABELS, DIMENSIONS_TABLE, METRICS, RUN_FILE, cnn_label, cnn_row_key, rnn_row_key
from .errors import fail
from .io import OutputPath, atomic_path
from .table_cells import SELECTION_TEXT, Cell, aggregate, read_metrics
from .table_cells import tsv_number as _tsv_number
from .table_dimensions import TITLE as DIMENSIONS_TITLE
from .table_dimensions import check_dimensions_layout, write_dimensions_table

TABLE_TITLES = {
    "1": "Single-frame CNN variants and CNN+RNN (nonlinearity of the RNN)",
    "2": "CNN+RNN: number of hidden units h",
    "3": "CNN+RNN: window length W (frames)",
    "4": "CNN+RNN: number of RNN layers (3 layers = h, h, h/2 units)",
    "5": "Comparison with the published results",
    DIMENSIONS_TABLE: DIMENSIONS_TITLE,
}

# Valence CCC on the AV+EC 2015 (RECOLA) development set, as reported by Khorrami et al.,
# "How deep neural networks can improve emotion recognition on video data", ICIP 2016.
# Keys match the layout's row keys; shown beside our numbers, marked as quoted.
PAPER_SOURCE = "Khorrami et al., ICIP 2016 (RECOLA dev, valence)"
PAPER_CCC = {
    cnn_row_key("plain"): 0.290,
    cnn_row_key("D"): 0.363,
    cnn_row_key("A"): 0.336,
    cnn_row_key("AD"): 0.361,
    rnn_row_key({"nonlinearity": "tanh"}): 0.476,
    rnn_row_key({"nonlinearity": "relu"}): 0.481,
    rnn_row_key({"layers": 3}): 0.489,
}
FEATURE_NORM_CAPTIONS = {
    "causal": "RNN inputs standardized causally: frame t by running statistics of its recording's frames "
    "<= t (started from the training set's), no labels; no prediction uses a later frame.",
    "train": "RNN inputs standardized with the training set's statistics; no prediction uses a later frame.",
    "recording-transductive": "TRANSDUCTIVE: RNN inputs standardized by each recording's statistics over ALL "
    "its frames, so a prediction at t depends on frames after t (the CNN rows do not "
    "get this help).",
}
PAPER_LABELS = {
    **{cnn_row_key(variant): cnn_label(variant) for variant in CNN_LABELS},
    rnn_row_key({"nonlinearity": "tanh"}): "CNN+RNN (tanh)",
    rnn_row_key({"nonlinearity": "relu"}): "CNN+RNN (ReLU)",
    rnn_row_key({"layers": 3}): "CNN+RNN (3 layers)",
}


def add_commands(subparsers) -> None:
    tables = subparsers.add_parser(
        "tables",
        help="write the paper's Tables 1-5 (markdown and TSV) from metrics files",
        description="Write DIR/table{1..5}.md and .tsv: RMSE, CC, CCC per model (mean +- sd over seeds); with "
        "two or more dimensions also table6: CCC per dimension and P_VA.",
    )
    source = tables.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the workflow's config (YAML or JSON), from which the rows and their metrics files follow",
    )
    source.add_argument("--layout", help="JSON layout (rows and their metrics files per table), or @FILE")
    tables.add_argument("--out-dir", required=True, type=OutputPath)
    tables.set_defaults(handler=_run_tables)

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


# ---------------------------------------------------------------- tables


@dataclass(frozen=True)
class Row:
    label: str
    key: str
    source: str  # "ours" or a citation
    cells: dict[str, Cell]  # rmse, cc, ccc, ccc_rec
    seeds: int
    paper_ccc: float | None
    selected: dict[str, Cell] = field(
        default_factory=dict
    )  # CCC of the same model chosen by another selection (e.g. validation)


def build_row(spec: dict) -> Row:
    runs = [read_metrics(Path(p)) for p in spec["metrics"]]
    cells = {m: aggregate([r["concatenated"].get(m) for r in runs]) for m in METRICS}
    cells["ccc_rec"] = aggregate([r["per_recording_mean"].get("ccc") for r in runs])
    # training loss at its lowest over the training labels' variance: ~1 means the model collapsed to the mean
    cells["loss_ratio"] = aggregate([(r.get("settings") or {}).get("train_loss_to_label_variance") for r in runs])
    key = spec.get("key", "")
    selected = {
        selection: aggregate([read_metrics(Path(p))["concatenated"].get("ccc") for p in paths])
        for selection, paths in (spec.get("selected") or {}).items()
    }
    return Row(spec["label"], key, "ours", cells, len(runs), PAPER_CCC.get(key), selected)


def quoted_rows() -> list[Row]:
    """The paper's own results, quoted (CCC only: the rows we compare against)."""
    rows = []
    for key, ccc in PAPER_CCC.items():
        cells = {m: Cell(math.nan, None, 0) for m in ("rmse", "cc", "ccc_rec", "loss_ratio")}
        cells["ccc"] = Cell(ccc, None, 1)
        rows.append(Row(PAPER_LABELS[key], key, f"quoted: {PAPER_SOURCE}", cells, 0, None, {}))
    return rows


def render_markdown(number: str, rows: list[Row], layout: dict, comparison: bool) -> str:
    title = TABLE_TITLES.get(number, f"Table {number}")
    lines = [
        f"# Table {number}: {title}",
        "",
        f"{layout.get('dimension', 'valence').capitalize()} on the {layout.get('partition', 'dev')} partition; "
        "RMSE, CC and CCC over all recordings concatenated (the paper's headline), CCC per "
        "recording averaged; mean ± sd over seeds where there is more than one.",
    ]
    if layout.get("rnn_features") and any(r.key.startswith("rnn:") for r in rows):
        base = layout.get("rnn_base") or {}
        base_text = ", ".join(f"{k}={v}" for k, v in base.items())
        lines.append(
            f"CNN+RNN rows: frozen {layout['rnn_features']} features; other settings as the base ({base_text})."
        )
        lines.append(FEATURE_NORM_CAPTIONS.get(layout.get("rnn_feature_norm", "causal"), ""))
    if layout.get("cnn_normalization"):
        lines.append(
            f"CNN inputs: raw chips, augmented for variants A/AD, then normalized with "
            f"`{layout['cnn_normalization']}` on every batch, at extraction too."
        )
    if layout.get("selection"):
        lines.append(
            f"Models (epochs) selected by CCC on {SELECTION_TEXT.get(layout['selection'], layout['selection'])}."
        )
    extra = sorted({s for r in rows for s in (r.selected or {})})
    for selection in extra:
        lines.append(
            f"Column 'CCC, selected on {selection}': the same model trained again (first seed) with its "
            f"epoch chosen on {SELECTION_TEXT.get(selection, selection)} instead"
            + (", on the training subjects less the held-out one" if selection == "validation" else "")
            + ": the gap to CCC shows how optimistic choosing on the scored partition is."
        )
    lines.append("")
    if comparison:
        lines += [
            "| Model | Source | RMSE | CC | CCC | CCC per recording | Seeds |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in rows:
            lines.append(
                f"| {r.label} | {r.source} | {r.cells['rmse'].text()} | {r.cells['cc'].text()} | "
                f"{r.cells['ccc'].text()} | {r.cells['ccc_rec'].text()} | {r.seeds or '-'} |"
            )
        lines += [
            "",
            "Rows marked *quoted* are copied from the paper (real RECOLA videos, full-size "
            "models), not computed here; only their CCC is quoted.",
        ]
    else:
        extra_head = "".join(f" CCC, selected on {s} |" for s in extra)
        lines += [
            f"| Model | RMSE | CC | CCC | CCC per recording | Seeds |{extra_head} Train loss / label var. "
            "| Paper CCC (quoted) |",
            "| --- | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(extra) + " ---: | ---: |",
        ]
        for r in rows:
            paper = f"{r.paper_ccc:.3f}" if r.paper_ccc is not None else ""
            extra_cells = "".join(f" {(r.selected or {}).get(s, Cell(math.nan, None, 0)).text()} |" for s in extra)
            lines.append(
                f"| {r.label} | {r.cells['rmse'].text()} | {r.cells['cc'].text()} | "
                f"{r.cells['ccc'].text()} | {r.cells['ccc_rec'].text()} | {r.seeds} |{extra_cells} "
                f"{r.cells['loss_ratio'].text(2)} | {paper} |"
            )
        lines += [
            "",
            "Train loss / label var.: the lowest training loss over the variance of the training "
            "labels (a model that only learned the mean stays near 1).",
        ]
        if any(r.paper_ccc is not None for r in rows):
            lines += ["", f"Paper CCC: quoted from {PAPER_SOURCE}, not computed here."]
    return "\n".join(lines) + "\n"


def render_tsv(rows: list[Row]) -> str:
    header = ["model", "source", "key", "seeds"]
    for m in ("rmse", "cc", "ccc", "ccc_rec", "loss_ratio"):
        header += [f"{m}_mean", f"{m}_sd"]
    extra = sorted({s for r in rows for s in (r.selected or {})})
    header += [f"ccc_selected_on_{s}" for s in extra]
    header.append("paper_ccc")
    lines = ["\t".join(header)]
    for r in rows:
        fields = [r.label, r.source, r.key, str(r.seeds)]
        for m in ("rmse", "cc", "ccc", "ccc_rec", "loss_ratio"):
            fields += [_tsv_number(r.cells[m].mean), _tsv_number(r.cells[m].sd)]
        fields += [_tsv_number((r.selected or {}).get(s, Cell(math.nan, None, 0)).mean) for s in extra]
        fields.append(_tsv_number(r.paper_ccc))
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def parse_layout(text: str) -> dict:
    source = "--layout"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text()
        except OSError as error:
            raise fail(source, f"cannot read the layout: {error.strerror}") from None
    try:
        layout = json.loads(text)
    except json.JSONDecodeError as error:
        raise fail(source, f"layout is not JSON: {error}") from None
    return check_layout(layout, source)


def check_layout(layout, source) -> dict:
    """The layout, if every table has rows, each with a label and metrics files."""
    tables = layout.get("tables") if isinstance(layout, dict) else None
    if not isinstance(tables, dict) or not tables:
        raise fail(source, "layout has no 'tables' mapping")
    for number, rows in tables.items():
        if not isinstance(rows, list) or not all(
            isinstance(r, dict) and "label" in r and r.get("metrics") for r in rows
        ):
            raise fail(source, f"table {number}: rows need a label and a non-empty metrics list")
    if DIMENSIONS_TABLE in tables:
        check_dimensions_layout(layout, source)
    return layout


def write_tables(layout: dict, out_dir: Path) -> list[Path]:
    """Write table{N}.md and .tsv for every table of the layout; returns the paths written."""
    written = []
    for number, specs in layout["tables"].items():
        if number == DIMENSIONS_TABLE:
            written += write_dimensions_table(number, specs, layout, out_dir)
            continue
        rows = [build_row(spec) for spec in specs]
        comparison = number == "5"
        if comparison:
            rows += quoted_rows()
        for suffix, text in ((".md", render_markdown(number, rows, layout, comparison)), (".tsv", render_tsv(rows))):
            target = out_dir / f"table{number}{suffix}"
            with atomic_path(target) as tmp:
                tmp.write_text(text)
            written.append(target)
    return written


def _run_tables(args: argparse.Namespace) -> int:
    if args.config is not None:
        from .tables_layout import config_file_layout

        layout = check_layout(config_file_layout(args.config), args.config)
    else:
        layout = parse_layout(args.layout)
    for path in write_tables(layout, args.out_dir):
        print(path)
    return 0


# ---------------------------------------------------------------- figures


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
