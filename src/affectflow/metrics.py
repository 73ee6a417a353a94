"""Scores of a continuous prediction against the gold standard (docs/design.md, section 1).

All three use population (biased, 1/N) moments, as the AV+EC challenge does.
Pairs where either side is NaN are dropped first (frames without a gold label,
e.g. past the end of a shifted label track). Inputs of different lengths are an
error, never silently truncated.

Degenerate inputs: Pearson CC of a constant prediction (or constant gold) is
NaN (0/0 correlation is undefined); CCC stays defined there (its denominator
contains the mean difference and the other variance) and is NaN only when both
sides are constant and equal, and RMSE is always defined. With no valid pair
every score is NaN.
"""

from __future__ import annotations

import math

import numpy as np


def _pairs(pred, gold) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    gold = np.asarray(gold, dtype=np.float64).ravel()
    if pred.shape != gold.shape:
        raise ValueError(f"prediction has {pred.size} values, gold has {gold.size}")
    keep = np.isfinite(pred) & np.isfinite(gold)
    return pred[keep], gold[keep]


def rmse(pred, gold) -> float:
    """Root mean squared error over the valid pairs."""
    p, g = _pairs(pred, gold)
    if p.size == 0:
        return math.nan
    return float(np.sqrt(np.mean((p - g) ** 2)))


def pearson(pred, gold) -> float:
    """Pearson correlation (population moments); NaN when either side is constant."""
    p, g = _pairs(pred, gold)
    if p.size == 0:
        return math.nan
    dp, dg = p - p.mean(), g - g.mean()
    denom = math.sqrt(float(np.mean(dp * dp)) * float(np.mean(dg * dg)))
    if denom == 0.0:
        return math.nan
    return float(np.mean(dp * dg) / denom)


def ccc(pred, gold) -> float:
    """Concordance correlation coefficient 2cov / (var p + var g + (mean p - mean g)^2)."""
    p, g = _pairs(pred, gold)
    if p.size == 0:
        return math.nan
    mp, mg = p.mean(), g.mean()
    cov = float(np.mean((p - mp) * (g - mg)))
    denom = float(np.var(p) + np.var(g) + (mp - mg) ** 2)
    if denom == 0.0:
        return math.nan
    return 2.0 * cov / denom


def scores(pred, gold) -> dict[str, float]:
    """All three scores: {"rmse", "cc", "ccc"}."""
    return {"rmse": rmse(pred, gold), "cc": pearson(pred, gold), "ccc": ccc(pred, gold)}


def mean_scores(per_recording: dict[str, dict[str, float]]) -> dict[str, float]:
    """Mean of per-recording scores, ignoring recordings where a score is NaN."""
    out = {}
    for key in ("rmse", "cc", "ccc"):
        values = [s[key] for s in per_recording.values() if not math.isnan(s[key])]
        out[key] = float(np.mean(values)) if values else math.nan
    return out
