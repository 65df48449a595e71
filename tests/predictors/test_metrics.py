"""Metrics: exact keys and values on hand-made cases; the scatter plot is a PNG."""

from __future__ import annotations

import numpy as np
import pytest

from latkit.errors import PredictorError
from latkit.predictors.metrics import METRIC_KEYS, format_report, plot_scatter, regression_metrics


def test_known_values():
    t = np.array([10.0, 20.0, 30.0, 40.0])
    p = np.array([11.0, 19.0, 30.0, 48.0])  # errors 10%, 5%, 0%, 20%
    m = regression_metrics(t, p)
    assert set(METRIC_KEYS) <= set(m)
    assert m["n"] == 4
    assert m["rmse_ms"] == pytest.approx(np.sqrt((1 + 1 + 0 + 64) / 4))
    assert m["mape"] == pytest.approx(8.75)
    assert m["acc10"] == pytest.approx(75.0)  # 10% counts as within
    assert m["acc5"] == pytest.approx(50.0)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["kendall"] == pytest.approx(1.0)
    assert m["units"]["mape"] == "percent"
    assert "MAPE" in format_report(m)


def test_rank_metrics_see_order_errors_and_undefined_cases():
    m = regression_metrics([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])
    assert m["spearman"] == pytest.approx(-1.0) and m["kendall"] == pytest.approx(-1.0)
    assert regression_metrics([1.0], [1.0])["spearman"] is None
    with pytest.raises(PredictorError):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(PredictorError):
        regression_metrics([0.0, 1.0], [1.0, 1.0])


def test_scatter_plot_is_a_png(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.uniform(5, 30, 100)
    out = plot_scatter(t, t * rng.normal(1, 0.03, 100), tmp_path / "s.png", "test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
