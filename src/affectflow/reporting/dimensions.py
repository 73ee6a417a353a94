"""Table 6 of ``affectflow tables``, with two or more dimensions (config ``dimension: [valence, arousal]``):
Table 1's models' CCC per dimension and P_VA, the ABAW valence-arousal score (per seed the mean of the
valence and arousal CCCs, then mean +- sd over seeds), beside the ABAW challenges' anchors on Aff-Wild2's
Validation_Set, quoted, never computed. Tables 1-5 (:mod:`affectflow.reporting.tables`) are the first dimension's."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..contracts import DIMENSIONS_TABLE
from ..errors import fail
from ..io import atomic_path
from .cells import SELECTION_TEXT, Cell, aggregate, read_metrics, tsv_number

TITLE = "CCC per dimension and P_VA"
# ABAW's valence-arousal track on Aff-Wild2's Validation_Set (P_VA: the mean of the valence and arousal
# CCCs): anchors quoted beside Table 6, marked as quoted, never computed here. (label, valence, arousal, P_VA
# as published: a number, or a text where only a range is quoted.)
ABAW_SOURCE = "ABAW challenges, Aff-Wild2 Validation_Set"
ABAW_ANCHORS: tuple[tuple[str, float | None, float | None, float | str], ...] = (
    ("ABAW2 baseline", 0.21, 0.23, 0.22),
    ("ABAW8 baseline (ResNet-50)", None, None, "about 0.22"),
    ("Best ABAW entries", None, None, "0.55-0.66"),
)


@dataclass(frozen=True)
class DimensionRow:
    """A model's CCC (and collapse check) per dimension over seeds, and P_VA: per seed the mean of the
    valence and arousal CCCs, then over seeds; or a quoted anchor (``published``: its cells as published,
    by dimension and "p_va")."""

    label: str
    key: str
    source: str  # "ours" or a citation
    ccc: dict[str, Cell]
    loss_ratio: dict[str, Cell]
    p_va: Cell
    seeds: int
    published: dict[str, str] = field(default_factory=dict)


NO_CELL = Cell(math.nan, None, 0)


def build_dimension_row(spec: dict, dimensions: list[str]) -> DimensionRow:
    runs = {d: [read_metrics(Path(p)) for p in spec["dimensions"][d]] for d in dimensions}
    ccc = {d: [r["concatenated"].get("ccc") for r in runs[d]] for d in dimensions}
    p_va = NO_CELL
    if "valence" in runs and "arousal" in runs:  # the seeds pair up by position (the same seed order)
        p_va = aggregate([_mean_or_none(v, a) for v, a in zip(ccc["valence"], ccc["arousal"])])
    return DimensionRow(
        spec["label"],
        spec.get("key", ""),
        "ours",
        {d: aggregate(ccc[d]) for d in dimensions},
        {
            d: aggregate([(r.get("settings") or {}).get("train_loss_to_label_variance") for r in runs[d]])
            for d in dimensions
        },
        p_va,
        max(len(runs[d]) for d in dimensions),
    )


def _mean_or_none(a, b) -> float | None:
    if a is None or b is None or not (math.isfinite(float(a)) and math.isfinite(float(b))):
        return None
    return (float(a) + float(b)) / 2


def quoted_abaw_rows(dimensions: list[str]) -> list[DimensionRow]:
    """ABAW's anchors, quoted (valence, arousal and P_VA where published)."""
    rows = []
    for label, valence, arousal, p_va in ABAW_ANCHORS:
        values = {"valence": valence, "arousal": arousal, "p_va": p_va}
        published = {k: (f"{v:g}" if isinstance(v, float) else v) for k, v in values.items() if v is not None}
        number = {k: Cell(v, None, 1) if isinstance(v, float) else NO_CELL for k, v in values.items()}
        rows.append(
            DimensionRow(
                label,
                "",
                f"quoted: {ABAW_SOURCE}",
                {d: number.get(d, NO_CELL) for d in dimensions},
                {d: NO_CELL for d in dimensions},
                number["p_va"],
                0,
                published,
            )
        )
    return rows


def render_dimensions_markdown(number: str, rows: list[DimensionRow], layout: dict) -> str:
    dimensions = list(layout["dimensions"])
    has_p_va = "valence" in dimensions and "arousal" in dimensions
    names = ", ".join(d.capitalize() for d in dimensions)
    lines = [
        f"# Table {number}: {TITLE}",
        "",
        f"{names} on the {layout.get('partition', 'dev')} partition: Table 1's models, each trained, selected "
        "and scored for every dimension on its own; CCC over all recordings concatenated, mean ± sd over "
        "seeds where there is more than one.",
    ]
    if has_p_va:
        lines.append(
            "P_VA (the ABAW valence-arousal score): per seed, the mean of the valence and arousal CCCs; "
            "then mean ± sd over seeds."
        )
    if layout.get("selection"):
        lines.append(
            f"Models (epochs) selected by CCC of their own dimension on "
            f"{SELECTION_TEXT.get(layout['selection'], layout['selection'])}."
        )
    lines.append(
        f"Tables 1-5 are the first dimension's ({dimensions[0]}). Rows marked *quoted* are copied from the "
        "ABAW challenges (Aff-Wild2 Validation_Set; other models, full-size data), not computed here."
    )
    lines.append("")
    p_va_head = " P_VA |" if has_p_va else ""
    lines += [
        "| Model | Source |"
        + "".join(f" CCC {d} |" for d in dimensions)
        + p_va_head
        + " Seeds |"
        + "".join(f" Train loss / label var. ({d}) |" for d in dimensions),
        "| --- | --- |" + " ---: |" * (2 * len(dimensions) + 1 + has_p_va),
    ]
    for r in rows:
        ours = r.source == "ours"
        cells = [r.ccc[d].text() if ours else r.published.get(d, "") for d in dimensions]
        if has_p_va:
            cells.append(r.p_va.text() if ours else r.published.get("p_va", ""))
        cells.append(str(r.seeds or "-"))
        cells += [r.loss_ratio[d].text(2) if ours else "" for d in dimensions]
        lines.append(f"| {r.label} | {r.source} |" + "".join(f" {c} |" for c in cells))
    lines += [
        "",
        "Train loss / label var.: the lowest training loss over the variance of the training labels "
        "(a model that only learned the mean stays near 1).",
    ]
    return "\n".join(lines) + "\n"


def render_dimensions_tsv(rows: list[DimensionRow], dimensions: list[str]) -> str:
    header = ["model", "source", "key", "seeds"]
    for d in dimensions:
        header += [f"ccc_{d}_mean", f"ccc_{d}_sd"]
    header += ["p_va_mean", "p_va_sd"]
    header += [f"loss_ratio_{d}_mean" for d in dimensions]
    header.append("p_va_published")
    lines = ["\t".join(header)]
    for r in rows:
        fields = [r.label, r.source, r.key, str(r.seeds)]
        for d in dimensions:
            fields += [tsv_number(r.ccc[d].mean), tsv_number(r.ccc[d].sd)]
        fields += [tsv_number(r.p_va.mean), tsv_number(r.p_va.sd)]
        fields += [tsv_number(r.loss_ratio[d].mean) for d in dimensions]
        fields.append(r.published.get("p_va", ""))
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


def write_dimensions_table(number: str, specs: list[dict], layout: dict, out_dir: Path) -> list[Path]:
    dimensions = list(layout["dimensions"])
    rows = [build_dimension_row(spec, dimensions) for spec in specs] + quoted_abaw_rows(dimensions)
    written = []
    for suffix, text in (
        (".md", render_dimensions_markdown(number, rows, layout)),
        (".tsv", render_dimensions_tsv(rows, dimensions)),
    ):
        target = out_dir / f"table{number}{suffix}"
        with atomic_path(target) as tmp:
            tmp.write_text(text)
        written.append(target)
    return written


def check_dimensions_layout(layout: dict, source) -> None:
    """Table 6 needs the layout's dimensions and, per row, metrics files for each."""
    tables = layout["tables"]
    dimensions = layout.get("dimensions")
    if (
        not isinstance(dimensions, list)
        or not dimensions
        or not all(
            isinstance(r.get("dimensions"), dict) and all(r["dimensions"].get(d) for d in dimensions)
            for r in tables[DIMENSIONS_TABLE]
        )
    ):
        raise fail(
            source,
            f"table {DIMENSIONS_TABLE}: needs the layout's 'dimensions' and, per row, metrics files for each",
        )
