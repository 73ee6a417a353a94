"""The tables' layout from the workflow config (affectflow.reporting.layout): the one source of the
workflow's model runs and of the rows `affectflow tables --config` writes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from affectflow.cli import main
from affectflow.contracts import RUN_PATTERN, metrics_path, run_dimension, run_id, run_seed, run_selection
from affectflow.reporting.layout import model_runs, rnn_grid, tables_config, tables_layout
from affectflow.reporting.tables import check_layout, write_tables
from helpers import read_table

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


# ---- several dimensions (`dimension: [valence, arousal]`): every model for each, Table 6


def test_run_names_carry_every_dimension_but_the_first():
    assert [run_id(0, "dev", "dev", d, "valence") for d in ("valence", "arousal")] == ["seed0", "seed0-arousal"]
    assert run_id(2, "validation", "dev", "arousal", "valence") == "seed2-validation-arousal"
    assert run_id(1, "validation", "dev") == "seed1-validation"  # one dimension: the names of before
    for run, seed, selection, dimension in [
        ("seed0", 0, "dev", "valence"),
        ("seed12-validation", 12, "validation", "valence"),
        ("seed3-arousal", 3, "dev", "arousal"),
        ("seed0-validation-arousal", 0, "validation", "arousal"),
    ]:
        assert re.fullmatch(RUN_PATTERN, run)
        assert (run_seed(run), run_selection(run, "dev"), run_dimension(run, "valence")) == (seed, selection, dimension)
    assert run_dimension("seed0", "arousal") == "arousal"  # the config's first dimension
    for bad in ("seed0-arousal-validation", "seed0-dominance", "seed-1"):
        assert not re.fullmatch(RUN_PATTERN, bad)
        with pytest.raises(ValueError, match="not a run name"):
            run_seed(bad)


def two_dimensions(name: str = "tiny", **changes) -> dict:
    config = workflow_config(name)
    config.update(dimension=["valence", "arousal"], **changes)
    validate(config, schema=str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def test_two_dimensions_train_every_model_for_each_and_tables_1_to_5_stay_the_first_ones():
    one = workflow_config("tiny")
    two = two_dimensions(selection=["dev", "validation"])
    one["selection"] = ["dev", "validation"]
    runs_one, runs_two = set(model_runs(one)), set(model_runs(two))
    assert runs_one < runs_two and len(runs_two) == 2 * len(runs_one)
    assert {(kind, model, f"{run}-arousal") for kind, model, run in runs_one} == runs_two - runs_one
    assert ("cnn", "AD", "seed0-validation-arousal") in runs_two

    layout_one, layout_two = tables_layout(one), tables_layout(two)
    assert list(layout_two["tables"]) == ["1", "2", "3", "4", "5", "6"] and "6" not in layout_one["tables"]
    assert layout_two["dimension"] == "valence" and layout_two["dimensions"] == ["valence", "arousal"]
    for n in "12345":
        assert layout_two["tables"][n] == layout_one["tables"][n]
    table6 = layout_two["tables"]["6"]
    assert [row["label"] for row in table6] == [row["label"] for row in layout_two["tables"]["1"]]
    ad = next(row for row in table6 if row["key"] == "cnn:AD")
    assert ad["dimensions"] == {
        "valence": ["results/metrics/cnn/AD/seed0.json"],
        "arousal": ["results/metrics/cnn/AD/seed0-arousal.json"],
    }
    # every metrics file the tables read is one the workflow makes (the arousal sweeps' are not tabulated)
    read = layout_metrics(layout_two) | {p for row in table6 for paths in row["dimensions"].values() for p in paths}
    assert read <= {metrics_path(*run) for run in runs_two}
    assert check_layout(layout_two, "test") is layout_two


def test_the_schema_takes_one_dimension_or_a_list_of_distinct_ones():
    schema = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
    for good in ("arousal", ["arousal"], ["valence", "arousal"]):
        validate({**workflow_config("tiny"), "dimension": good}, schema=schema)
    for bad in ([], ["valence", "valence"], ["valence", "dominance"], "dominance"):
        with pytest.raises(Exception):  # noqa: B017 - snakemake's WorkflowError wraps the schema's ValidationError
            validate({**workflow_config("tiny"), "dimension": bad}, schema=schema)


def _write_scores(path: str, ccc: float, loss_ratio: float = 0.5) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    scores = {"rmse": 0.3, "cc": 0.5, "ccc": ccc}
    settings = {"train_loss_to_label_variance": loss_ratio}
    Path(path).write_text(json.dumps({"concatenated": scores, "per_recording_mean": scores, "settings": settings}))


def test_table6_gives_ccc_per_dimension_and_p_va_the_mean_of_the_two_per_seed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = two_dimensions(seeds=2, sweep_seeds=1)
    layout = tables_layout(config)
    for path in layout_metrics(layout) | {metrics_path(*run) for run in model_runs(config)}:
        _write_scores(path, 0.1)
    # CNN+AD by construction (exact in binary): valence 0.5 / 0.75, arousal 0.25 / 0 over seeds 0 / 1: P_VA 0.375 both
    for seed, valence, arousal in ((0, 0.5, 0.25), (1, 0.75, 0.0)):
        _write_scores(f"results/metrics/cnn/AD/seed{seed}.json", valence)
        _write_scores(f"results/metrics/cnn/AD/seed{seed}-arousal.json", arousal, loss_ratio=0.9)
    Path("config.yaml").write_text(yaml.safe_dump(tables_config(config), sort_keys=False))
    assert main(["tables", "--config", "config.yaml", "--out-dir", "tables"]) == 0

    table6 = Path("tables/table6.md").read_text()
    assert table6.startswith("# Table 6: CCC per dimension and P_VA\n")
    assert "| CNN+AD | ours | 0.625 ± 0.177 | 0.125 ± 0.177 | 0.375 ± 0.000 | 2 | 0.50 ± 0.00 | 0.90 ± 0.00 |" in table6
    assert "| CNN | ours | 0.100 ± 0.000 | 0.100 ± 0.000 | 0.100 ± 0.000 | 2 |" in table6
    # ABAW's anchors, quoted as published, never computed
    assert "| ABAW2 baseline | quoted: ABAW challenges, Aff-Wild2 Validation_Set | 0.21 | 0.23 | 0.22 | - |" in table6
    assert (
        "| ABAW8 baseline (ResNet-50) | quoted: ABAW challenges, Aff-Wild2 Validation_Set |  |  | about 0.22 |"
        in table6
    )
    assert "0.55-0.66" in table6 and "not computed here" in table6
    rows = {row["model"]: row for row in read_table(Path("tables/table6.tsv"))}
    ad = rows["CNN+AD"]
    assert (ad["source"], ad["seeds"], ad["p_va_mean"], ad["p_va_sd"]) == ("ours", "2", "0.375", "0")
    assert (float(ad["ccc_valence_mean"]), float(ad["ccc_arousal_mean"])) == pytest.approx((0.625, 0.125))
    assert rows["ABAW2 baseline"]["p_va_mean"] == "0.22" and rows["Best ABAW entries"]["p_va_published"] == "0.55-0.66"
    assert all(rows[label]["source"].startswith("quoted: ") for label in ("ABAW2 baseline", "Best ABAW entries"))

    # Tables 1-5 are the first dimension's: byte-identical to those of the same config with valence alone
    Path("one.yaml").write_text(yaml.safe_dump(tables_config({**config, "dimension": "valence"}), sort_keys=False))
    assert main(["tables", "--config", "one.yaml", "--out-dir", "one"]) == 0
    assert sorted(p.name for p in Path("one").iterdir()) == [
        f"table{n}.{e}" for n in range(1, 6) for e in ("md", "tsv")
    ]
    for name in Path("one").iterdir():
        assert Path("tables", name.name).read_bytes() == name.read_bytes()
