"""The cells of the tables (:mod:`affectflow.reporting.tables`, :mod:`affectflow.reporting.dimensions`): a metric over
seeds (mean, sample sd), a metrics file read, a TSV number, the model selections' wording."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import fail

SELECTION_TEXT = {
    "dev": "the dev partition itself (the paper's protocol)",
    "validation": "a held-out training subject (dev never seen)",
}


@dataclass(frozen=True)
class Cell:
    """A metric over seeds: mean, sample sd (None for one seed) and the count of finite values."""

    mean: float
    sd: float | None
    count: int

    def text(self, digits: int = 3) -> str:
        if self.count == 0:
            return "n/a"
        if self.sd is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


def aggregate(values: list[float | None]) -> Cell:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return Cell(math.nan, None, 0)
    sd = statistics.stdev(finite) if len(finite) > 1 else None
    return Cell(statistics.fmean(finite), sd, len(finite))


def read_metrics(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise fail(path, "metrics file is missing") from None
    except json.JSONDecodeError as error:
        raise fail(path, f"not a metrics JSON file: {error}") from None
    for section in ("concatenated", "per_recording_mean"):
        if not isinstance(data.get(section), dict):
            raise fail(path, f"metrics file has no {section!r} scores")
    return data


def tsv_number(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"
