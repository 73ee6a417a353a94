"""The tables' layout from the workflow config (affectflow.tables_layout): the one source of the
workflow's model runs and of the rows `affectflow tables --config` writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from affectflow.cli import main
from affectflow.contracts import metrics_path
from affectflow.report import check_layout, write_tables
from affectflow.tables_layout import model_runs, rnn_grid, tables_config, tables_layout

REPO = Path(__file__).resolve().parents[1]


def workflow_config(name: str) -> dict:
    """config/NAME.yaml as the workflow sees it: validated, the schema's defaults set."""
    config = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    validate(config, schema=str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def layout_metrics(layout: dict) -> set[str]:
    """Every metrics file a layout names: its rows' and their other selections'."""
    paths = set()
    for rows in layout["tables"].values():
        for row in rows:
            paths.update(row["metrics"])
            for selected in row["selected"].values():
                paths.update(selected)
    return paths


@pytest.mark.parametrize("name", ["config", "recola", "tiny"])
def test_the_tables_read_exactly_the_metrics_of_the_models_the_workflow_trains(name):
    config = workflow_config(name)
    assert layout_metrics(tables_layout(config)) == {metrics_path(*run) for run in model_runs(config)}


def test_the_demo_layout_rows_seeds_and_selections():
    layout = tables_layout(workflow_config("config"))
    table1 = layout["tables"]["1"]
    assert [row["label"] for row in table1] == [
        "CNN",
        "CNN+D",
        "CNN+A",
        "CNN+AD",
        "CNN+RNN (nonlinearity=tanh)",
        "CNN+RNN (nonlinearity=relu)",
        "CNN+RNN (window=1)",
    ]
    assert layout["tables"]["5"] == table1
    plain, ad, tanh = table1[0], table1[3], table1[4]
    # Table 1: every seed; the feature CNN and the RNN rows also selected on validation (first seed)
    assert plain["metrics"] == [f"results/metrics/cnn/plain/seed{s}.json" for s in range(3)] and not plain["selected"]
    assert ad["selected"] == {"validation": ["results/metrics/cnn/AD/seed0-validation.json"]}
    assert tanh["key"] == "rnn:nonlinearity=tanh"
    assert tanh["selected"] == {"validation": ["results/metrics/rnn/rnn-tanh-h100-w100-l1/seed0-validation.json"]}
    # Tables 2-4: sweep_seeds (1), no other selection
    table3 = layout["tables"]["3"]
    assert [row["label"] for row in table3][:2] == ["CNN+RNN (window=1)", "CNN+RNN (window=25)"]
    assert all(len(row["metrics"]) == 1 and not row["selected"] for row in table3)
    assert (layout["selection"], layout["rnn_features"], layout["rnn_feature_norm"]) == ("dev", "CNN+AD", "causal")


def test_identical_settings_share_one_rnn_config():
    rows, configs = rnn_grid(workflow_config("config"))
    # the base (relu, h100, W100, 1 layer) is a row of all four tables
    base = "rnn-relu-h100-w100-l1"
    assert all(base in {name for _, name in rows[table]} for table in rows)
    assert len(configs) == 12 and configs[base]["window"] == 100


def test_the_tables_config_holds_all_the_layout_reads_and_nothing_else():
    config = workflow_config("config")
    kept = tables_config(config)
    assert tables_config(kept) == kept
    assert "device" not in kept and "align" not in kept and set(kept["cnn"]) == {"variants", "normalization"}
    # through the file the workflow writes (YAML, the config's key order kept)
    assert tables_layout(yaml.safe_load(yaml.safe_dump(kept, sort_keys=False))) == tables_layout(config)
    other = copy.deepcopy(config)
    other["device"], other["cnn"]["epochs"], other["annotate"] = "cpu", 1, {"videos": "x"}
    assert tables_config(other) == kept


def _write_metrics(path: str, ccc: float) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scores = {"rmse": 0.3, "cc": 0.5, "ccc": ccc}
    Path(path).write_text(json.dumps({"concatenated": scores, "per_recording_mean": scores}))


def test_tables_command_reads_the_config_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the layout's metrics files are relative to the workflow's directory
    config = workflow_config("tiny")
    layout = tables_layout(config)
    for i, path in enumerate(sorted(layout_metrics(layout))):
        _write_metrics(path, 0.01 * i)
    Path("config.yaml").write_text(yaml.safe_dump(tables_config(config), sort_keys=False))

    assert main(["tables", "--config", "config.yaml", "--out-dir", "from_config"]) == 0
    write_tables(check_layout(layout, "test"), tmp_path / "from_layout")
    written = sorted(p.name for p in (tmp_path / "from_config").iterdir())
    assert written == [f"table{n}.{ext}" for n in range(1, 6) for ext in ("md", "tsv")]
    for name in written:
        assert (tmp_path / "from_config" / name).read_text() == (tmp_path / "from_layout" / name).read_text()

    Path("bad.yaml").write_text(yaml.safe_dump({"seeds": 1}))
    assert main(["tables", "--config", "bad.yaml", "--out-dir", "bad"]) == 2
    assert "bad.yaml: not a workflow config: no key" in capsys.readouterr().err
