"""The paper's Tables 1-5 from the workflow's metrics (Figure 3: affectflow.reporting.figures).

``affectflow tables --config CONFIG --out-dir DIR`` writes DIR/table{1..5}.{md,tsv} (and table6 with two
or more dimensions: Table 1's rows' CCC per dimension and P_VA).
CONFIG is the workflow's config (YAML or JSON; the workflow's rule ``tables_config`` writes the
keys the tables read), from which :func:`affectflow.reporting.layout.tables_layout` derives the
layout: per table, the rows and each row's metrics files (one per seed). ``--layout LAYOUT``
(JSON text, or ``@file.json``) gives a layout directly:

    {"partition": "dev", "dimension": "valence", "rnn_features": "CNN+AD",
     "rnn_base": {...}, "tables": {"1": [{"label": "CNN", "key": "cnn:plain",
                                         "metrics": ["results/metrics/cnn/plain/seed0.json"]}, ...]}}

A cell is the mean over seeds, with +- the sample standard deviation where there is
more than one seed. Table 5 puts our rows beside results quoted from the paper, Table 6 beside the
ABAW challenges' anchors on Aff-Wild2 (quoted, never computed).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts import CNN_LABELS, DIMENSIONS_TABLE, METRICS, cnn_label, cnn_row_key, rnn_row_key
from ..errors import fail
from ..io import OutputPath, atomic_path
from .cells import SELECTION_TEXT, Cell, aggregate, read_metrics
from .cells import tsv_number as _tsv_number
from .dimensions import TITLE as DIMENSIONS_TITLE
from .dimensions import check_dimensions_layout, write_dimensions_table

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
        from .layout import config_file_layout

        layout = check_layout(config_file_layout(args.config), args.config)
    else:
        layout = parse_layout(args.layout)
    for path in write_tables(layout, args.out_dir):
        print(path)
    return 0
