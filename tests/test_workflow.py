"""The Snakemake workflow: DAG shape by dry runs, lint/format, and a real run (config validation:
tests/test_config_validation.py).

Dry runs use a fresh working directory each (`snakemake -s Snakefile -d TMP`), so results of
other runs never change the counts.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time

import pytest

from affectflow.reporting.tables import aggregate, parse_layout, write_tables
from helpers import REPO, read_table, snakemake, tool_env
from workflow_helpers import (
    GRID_WITH_CONTROL,
    TABLE1_RNN_CONFIGS,
    dry_run_counts,
    expected_counts,
    finite_numbers_in_tsv,
    make_placeholder_recola,
    write_config,
)


@pytest.mark.slow
def test_demo_config_dag_has_one_job_per_subject_variant_seed_and_config(tmp_path):
    counts = dry_run_counts(tmp_path)
    # config/config.yaml: 3 train + 3 dev synthetic subjects, 4 CNN variants x 3 seeds; Table 1's
    # 3 RNN configs x 3 seeds, the other 9 configs of the grid x 1 seed (sweep_seeds); selection
    # on validation too: the AD CNN and Table 1's RNN configs once more (seed 0).
    rnn_runs = TABLE1_RNN_CONFIGS * 3 + (GRID_WITH_CONTROL - TABLE1_RNN_CONFIGS) * 1 + TABLE1_RNN_CONFIGS
    assert counts == expected_counts(3, 3, ["plain", "D", "A", "AD"], 3, rnn_runs, extra_selections=1, synthetic=True)


# config/recola.yaml: every RNN config x 3 seeds, and Table 1's configs once more selected on validation.
RECOLA_RNN_RUNS = GRID_WITH_CONTROL * 3 + TABLE1_RNN_CONFIGS


@pytest.fixture
def recola_workdir(tmp_path):
    """A working directory with a RECOLA-sized (27 subject) placeholder corpus and config/recola.yaml."""
    corpus = make_placeholder_recola(tmp_path / "AVEC2015")
    config = write_config(tmp_path / "recola.yaml", REPO / "config" / "recola.yaml", corpus={"path": str(corpus)})
    return tmp_path, config


@pytest.mark.slow
def test_recola_sized_dag_fans_out_over_18_labelled_subjects_and_3_seeds(recola_workdir):
    workdir, config = recola_workdir
    counts = dry_run_counts(workdir, "--configfile", str(config))
    assert "synth_corpus" not in counts  # a real corpus is read, never rendered
    assert counts == expected_counts(9, 9, ["plain", "D", "A", "AD"], 3, RECOLA_RNN_RUNS, extra_selections=1)


@pytest.mark.slow
def test_two_dimensions_train_and_score_every_model_for_each(tmp_path):
    """config/tiny.yaml with `dimension: [valence, arousal]`: every CNN, feature, RNN and scoring job
    once more for arousal (runs seed0-arousal, `--dimension arousal`), the faces aligned once, Table 6."""
    from affectflow.testing.snakemake_output import shell_commands

    single = dry_run_counts(tmp_path / "one", "--configfile", str(REPO / "config" / "tiny.yaml"))
    config = write_config(tmp_path / "tiny2.yaml", REPO / "config" / "tiny.yaml", dimension=["valence", "arousal"])
    both = dry_run_counts(tmp_path / "two", "--configfile", str(config))
    doubled = {"train_cnn", "extract", "train_rnn", "evaluate"}
    assert both == {rule: count * (2 if rule in doubled else 1) for rule, count in single.items()}
    assert both["align"] == single["align"] == 3

    result = snakemake(tmp_path / "two", "-n", "-p", "--configfile", str(config))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    commands = shell_commands(output)
    trained = [c for c in commands if c.startswith(("affectflow train-cnn", "affectflow train-rnn"))]
    assert len(trained) == 2 * (single["train_cnn"] + single["train_rnn"])
    for command in trained:
        arousal = "seed0-arousal" in command
        assert ("--dimension arousal" in command) == arousal and ("--dimension valence" in command) != arousal
        if arousal and "train-rnn" in command:  # an arousal RNN reads the arousal CNN and its features
            assert "--cnn results/cnn/AD/seed0-arousal/model.safetensors" in command
            assert "results/features/AD/seed0/" not in command
    arousal_runs = [c for c in commands if "-arousal" in c]
    assert sum(c.startswith("affectflow evaluate") for c in arousal_runs) == single["evaluate"]
    assert sum(c.startswith("affectflow extract") for c in arousal_runs) == single["extract"]
    assert "ratings_gold_standard/arousal/train_1.arff" in output  # the arousal runs' label inputs
    assert "results/tables/table6.md" in output and "results/tables/table6.tsv" in output
    single_output = snakemake(tmp_path / "one", "-n", "-p", "--configfile", str(REPO / "config" / "tiny.yaml"))
    assert "table6" not in single_output.stdout + single_output.stderr


def _mark_everything_done(workdir, config):
    """Create every output of the DAG as an empty file, then let Snakemake touch them in DAG order."""
    summary = snakemake(workdir, "--configfile", str(config), "--summary")
    assert summary.returncode == 0, summary.stderr[-2000:]
    for line in summary.stdout.splitlines()[1:]:
        path = workdir / line.split("\t")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    touched = snakemake(workdir, "--configfile", str(config), "--touch", "--cores", "1", timeout=300)
    assert touched.returncode == 0, touched.stderr[-2000:]
    assert dry_run_counts(workdir, "--configfile", str(config)) == {}


@pytest.mark.slow
def test_rerunning_one_subject_touches_only_that_subject_and_what_depends_on_it(recola_workdir):
    workdir, config = recola_workdir
    _mark_everything_done(workdir, config)

    # `--force` on one subject's faces: just that job.
    assert dry_run_counts(workdir, "--force", "--configfile", str(config), targets=("results/faces/dev_3.h5",)) == {
        "align": 1
    }

    # `--forcerun` on one subject's faces: that alignment and everything downstream. Every CNN
    # selects its epoch on the dev subjects, so all of them retrain; no other subject is re-aligned.
    # The tables' config file depends on the config alone: it stays.
    counts = dry_run_counts(workdir, "--configfile", str(config), "--forcerun", "results/faces/dev_3.h5")
    full = expected_counts(9, 9, ["plain", "D", "A", "AD"], 3, RECOLA_RNN_RUNS, extra_selections=1)
    del full["tables_config"]
    assert counts == {**full, "align": 1}

    # `--forcerun` on one subject's features of one CNN run: only that extraction, the scoring of
    # that run, and the tables (Figure 3 draws another variant's trace).
    counts = dry_run_counts(workdir, "--configfile", str(config), "--forcerun", "results/features/plain/seed1/dev_3.h5")
    assert counts == {"extract": 1, "evaluate": 1, "tables": 1, "all": 1}


# Bad configs: tests/test_config_validation.py.


@pytest.mark.slow
def test_lint_and_snakefmt_pass():
    lint = snakemake(None, "--lint", cwd=REPO)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    snakefmt = shutil.which("snakefmt", path=tool_env()["PATH"])
    assert snakefmt, "snakefmt is not installed (requirements.txt pins it)"
    check = subprocess.run([snakefmt, "--check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_tiny_config_runs_the_whole_dag_to_tables_figures_and_report(tmp_path):
    """A real run of every rule on 2 train / 1 dev synthetic subjects of 4 s, 1 epoch each."""
    config = REPO / "config" / "tiny.yaml"
    started = time.monotonic()
    run = snakemake(tmp_path, "--configfile", str(config), "--cores", "2", timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    elapsed = time.monotonic() - started

    for n in range(1, 6):
        assert (tmp_path / f"results/tables/table{n}.md").read_text().startswith(f"# Table {n}:")
        finite_numbers_in_tsv(tmp_path / f"results/tables/table{n}.tsv")
    assert "quoted" in (tmp_path / "results/tables/table5.md").read_text()
    for figure in ("figure3.png", "training_curves.png"):
        assert (tmp_path / "results/figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = snakemake(tmp_path, "--configfile", str(config), "--report", "results/report.html", timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "results/report.html").read_text(errors="replace")
    assert "table1.md" in html and "figure3.png" in html
    # Nothing left to do: every output is complete and up to date.
    assert dry_run_counts(tmp_path, "--configfile", str(config)) == {}
    print(f"tiny workflow: {elapsed:.0f} s")


@pytest.mark.slow
def test_tiny_config_with_two_dimensions_runs_to_table6(tmp_path):
    """A real run of config/tiny.yaml with `dimension: [valence, arousal]` (~2.5 min on 4 cores)."""
    config = write_config(tmp_path / "tiny2.yaml", REPO / "config" / "tiny.yaml", dimension=["valence", "arousal"])
    work = tmp_path / "work"
    run = snakemake(work, "--configfile", str(config), "--cores", "4", timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    for kind, model in (("cnn", "AD"), ("rnn", "rnn-tanh-h8-w10-l1")):
        for run_name, dimension in (("seed0", "valence"), ("seed0-arousal", "arousal")):
            metrics = json.loads((work / f"results/metrics/{kind}/{model}/{run_name}.json").read_text())
            assert metrics["dimension"] == dimension
    for n in range(1, 6):
        finite_numbers_in_tsv(work / f"results/tables/table{n}.tsv")
    finite_numbers_in_tsv(work / "results/tables/table6.tsv", ("ccc_valence_mean", "ccc_arousal_mean", "p_va_mean"))
    table6 = {row["model"]: row for row in read_table(work / "results/tables/table6.tsv")}
    ours = [row for row in table6.values() if row["source"] == "ours"]
    assert len(ours) == 4 and all(
        float(row["p_va_mean"])
        == pytest.approx(
            (float(row["ccc_valence_mean"]) + float(row["ccc_arousal_mean"])) / 2, abs=1e-5
        )  # TSV: 6 digits
        for row in ours
    )
    assert table6["ABAW2 baseline"]["source"].startswith("quoted: ")
    assert dry_run_counts(work, "--configfile", str(config)) == {}


def _metrics(path, rmse, cc, ccc, ccc_rec):
    path.write_text(
        json.dumps(
            {
                "concatenated": {"rmse": rmse, "cc": cc, "ccc": ccc},
                "per_recording_mean": {"rmse": rmse, "cc": cc, "ccc": ccc_rec},
            }
        )
    )
    return str(path)


def test_cells_are_mean_and_sample_sd_over_seeds_ignoring_missing_values():
    cell = aggregate([0.2, 0.4, None, float("nan")])
    assert cell.count == 2 and math.isclose(cell.mean, 0.3) and math.isclose(cell.sd, math.sqrt(0.02))
    assert cell.text() == "0.300 ± 0.141"
    assert aggregate([0.25]).text() == "0.250"  # one seed: no sd
    assert aggregate([None]).text() == "n/a"


def test_tables_command_writes_every_table_with_quoted_paper_rows(tmp_path):
    seeds = [_metrics(tmp_path / f"cnn{s}.json", 0.2 + s / 10, 0.5, 0.4 + s / 10, 0.3) for s in range(2)]
    rnn = [_metrics(tmp_path / "rnn.json", 0.1, 0.7, 0.6, 0.5)]
    layout = {
        "partition": "dev",
        "dimension": "valence",
        "rnn_features": "CNN+AD",
        "rnn_base": {"hidden": 100},
        "tables": {
            "1": [
                {"label": "CNN", "key": "cnn:plain", "metrics": seeds},
                {"label": "CNN+RNN (nonlinearity=tanh)", "key": "rnn:nonlinearity=tanh", "metrics": rnn},
            ],
            "5": [{"label": "CNN+RNN (nonlinearity=tanh)", "key": "rnn:nonlinearity=tanh", "metrics": rnn}],
        },
    }
    write_tables(parse_layout(json.dumps(layout)), tmp_path / "tables")
    table1 = (tmp_path / "tables/table1.md").read_text()
    assert "| CNN | 0.250 ± 0.071 | 0.500 ± 0.000 | 0.450 ± 0.071 | 0.300 ± 0.000 | 2 | n/a | 0.290 |" in table1
    assert "| CNN+RNN (nonlinearity=tanh) | 0.100 | 0.700 | 0.600 | 0.500 | 1 | n/a | 0.476 |" in table1
    sources = [row["source"] for row in read_table(tmp_path / "tables/table5.tsv")]
    assert sources[0] == "ours" and all(s.startswith("quoted: Khorrami") for s in sources[1:])
    assert finite_numbers_in_tsv(tmp_path / "tables/table1.tsv") == [0.25, 0.5, 0.45, 0.1, 0.7, 0.6]


def test_tables_show_other_selections_the_collapse_check_and_a_transductive_caption(tmp_path):
    def metrics(name, ccc, loss_ratio):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps(
                {
                    "concatenated": {"rmse": 0.3, "cc": 0.5, "ccc": ccc},
                    "per_recording_mean": {"rmse": 0.3, "cc": 0.5, "ccc": ccc},
                    "settings": {"train_loss_to_label_variance": loss_ratio},
                }
            )
        )
        return str(path)

    row = {
        "label": "CNN+RNN (nonlinearity=tanh)",
        "key": "rnn:nonlinearity=tanh",
        "metrics": [metrics("dev0", 0.5, 0.4), metrics("dev1", 0.7, 0.6)],
        "selected": {"validation": [metrics("val0", 0.45, 0.5)]},
    }
    layout = {
        "partition": "dev",
        "dimension": "valence",
        "rnn_features": "CNN+AD",
        "rnn_base": {"hidden": 100},
        "rnn_feature_norm": "recording-transductive",
        "selection": "dev",
        "tables": {"1": [row]},
    }
    write_tables(parse_layout(json.dumps(layout)), tmp_path / "tables")
    table1 = (tmp_path / "tables/table1.md").read_text()
    assert "TRANSDUCTIVE" in table1 and "frames after t" in table1
    assert "| CCC, selected on validation |" in table1
    assert "| 0.600 ± 0.141 | 0.600 ± 0.141 | 2 | 0.450 | 0.50 ± 0.14 | 0.476 |" in table1
    header = list(read_table(tmp_path / "tables/table1.tsv")[0])
    assert "ccc_selected_on_validation" in header and "loss_ratio_mean" in header
    layout["rnn_feature_norm"] = "causal"
    write_tables(parse_layout(json.dumps(layout)), tmp_path / "causal")
    assert "TRANSDUCTIVE" not in (tmp_path / "causal/table1.md").read_text()
