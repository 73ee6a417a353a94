"""affectflow.metrics against audmetric (an independent implementation) and direct formulas."""

import math

import audmetric
import numpy as np
import pytest

from affectflow import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_audmetric_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    gold = rng.uniform(-1, 1, 500)
    pred = 0.5 * gold + rng.normal(0.1, 0.3, 500)
    assert metrics.rmse(pred, gold) == pytest.approx(np.sqrt(audmetric.mean_squared_error(gold, pred)), rel=1e-9)
    assert metrics.pearson(pred, gold) == pytest.approx(audmetric.pearson_cc(gold, pred), rel=1e-9)
    assert metrics.ccc(pred, gold) == pytest.approx(audmetric.concordance_cc(gold, pred), rel=1e-9)


def test_population_moments_formula():
    pred, gold = np.array([0.0, 1.0, 2.0, 5.0]), np.array([1.0, 1.0, 3.0, 3.0])
    cov = np.mean((pred - pred.mean()) * (gold - gold.mean()))
    expected = 2 * cov / (pred.var() + gold.var() + (pred.mean() - gold.mean()) ** 2)
    assert metrics.ccc(pred, gold) == pytest.approx(expected)
    assert metrics.scores(pred, gold)["cc"] == pytest.approx(cov / (pred.std() * gold.std()))


def test_nan_pairs_are_dropped():
    gold = np.array([0.1, np.nan, 0.3, 0.5, 0.2])
    pred = np.array([0.0, 0.4, np.nan, 0.6, 0.1])
    keep = [0, 3, 4]
    assert metrics.scores(pred, gold) == pytest.approx(metrics.scores(pred[keep], gold[keep]))


def test_constant_prediction():
    gold = np.array([-0.5, 0.0, 0.5, 1.0])
    pred = np.full(4, 0.25)
    assert math.isnan(metrics.pearson(pred, gold))  # undefined correlation: NaN, documented
    assert metrics.ccc(pred, gold) == 0.0  # defined: zero covariance
    assert metrics.rmse(pred, gold) == pytest.approx(np.sqrt(np.mean((pred - gold) ** 2)))
    assert math.isnan(metrics.ccc(np.ones(3), np.ones(3)))  # both constant and equal: 0/0


def test_perfect_and_length_mismatch_and_empty():
    x = np.linspace(-1, 1, 20)
    assert metrics.ccc(x, x) == pytest.approx(1.0)
    assert metrics.ccc(x + 1, x) < 1.0  # a bias costs CCC, not CC
    assert metrics.pearson(x + 1, x) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.ccc(x, x[:-1])
    assert all(math.isnan(v) for v in metrics.scores([np.nan], [1.0]).values())
