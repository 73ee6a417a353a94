"""Shared helpers of the workflow and cluster tests: DAG job counts, configs and placeholder corpora.

Snakemake itself is launched by helpers.snakemake (a process group of its own)."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from affectflow.testing.snakemake_output import job_counts
from helpers import SNAKEFILE, read_table, snakemake

# The paper's RNN grid (Tables 1-4 around h=100, W=100, 1 layer, tanh) has 11 distinct
# configs: the base, ReLU, h 50/150/200, W 25/50/75/150, 2 and 3 layers. Our configs add the
# frame-wise control W=1 (Table 1 and Table 3): 12.
PAPER_GRID_RNN_CONFIGS = 11
GRID_WITH_CONTROL = PAPER_GRID_RNN_CONFIGS + 1
# Table 1's CNN+RNN rows in our configs: tanh (the base), ReLU, and the control W=1.
TABLE1_RNN_CONFIGS = 3


def dry_run_counts(workdir: Path, *args: str, targets: tuple[str, ...] = ()) -> dict[str, int]:
    # Targets go first: --configfile, --quiet and --forcerun all take several values.
    result = snakemake(workdir, *targets, "-n", "--quiet", "rules", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if "Nothing to be done" in result.stdout + result.stderr:
        return {}
    return job_counts(result.stdout + result.stderr)


def dry_run_in_process(workdir: Path, configfile: Path) -> str | None:
    """`snakemake -n --configfile CONFIGFILE` on this repository's Snakefile, inside this process
    (Snakemake's Python API: no interpreter start, ~0.1 s where a subprocess takes ~1.5 s).

    Returns None when the dry run succeeds, else the error Snakemake raised, as text.
    """
    from snakemake.api import ConfigSettings, OutputSettings, ResourceSettings, SnakemakeApi
    from snakemake.settings.types import Quietness

    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=[Path(configfile)]),
                snakefile=SNAKEFILE,
                workdir=Path(workdir),
            )
            workflow.dag().execute_workflow(executor="dryrun")
    except Exception as error:  # noqa: BLE001 - Snakemake raises several kinds; the text is what matters
        return f"{type(error).__name__}: {error}"
    return None


DELETE = object()  # set_key(config, key, DELETE) removes the key


def set_key(config: dict, key: str, value) -> dict:
    """Set a dotted key (``rnn.base.layers``) of a nested config mapping in place; returns the config."""
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return config


def write_config(path: Path, base: Path, **changes) -> Path:
    """A copy of config file ``base`` with top-level sections updated (nested dicts merged one level)."""
    config = yaml.safe_load(base.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def make_placeholder_recola(root: Path, per_partition: int = 9) -> Path:
    """An AV+EC 2015 layout of empty placeholder files (the corpus reader only checks they exist).

    Test subjects get no labels, as in the real corpus.
    """
    (root / "recordings_video").mkdir(parents=True)
    for dimension in ("valence", "arousal"):
        (root / "ratings_gold_standard" / dimension).mkdir(parents=True)
    for partition in ("train", "dev", "test"):
        for index in range(1, per_partition + 1):
            subject = f"{partition}_{index}"
            (root / "recordings_video" / f"{subject}.mp4").touch()
            if partition != "test":
                for dimension in ("valence", "arousal"):
                    (root / "ratings_gold_standard" / dimension / f"{subject}.arff").touch()
    return root


def expected_counts(
    n_train: int,
    n_dev: int,
    variants: list[str],
    seeds: int,
    rnn_runs: int,
    extra_selections: int = 0,
    synthetic: bool = False,
) -> dict[str, int]:
    """Jobs per rule of a full run. Features are extracted where they are used (RNN training and
    scoring for the RNN's CNN variant: train+dev subjects; scoring only for the others: dev).
    Each further model selection retrains the feature CNN once (first seed): one more CNN run
    whose features cover train+dev. `rnn_runs` counts every RNN run (configs x their seeds)."""
    n_variants = len(variants)
    feature_runs = seeds + extra_selections
    return {
        "align": n_train + n_dev,
        "train_cnn": n_variants * seeds + extra_selections,
        "extract": feature_runs * (n_train + n_dev) + seeds * (n_variants - 1) * n_dev,
        "evaluate": n_variants * seeds + extra_selections + rnn_runs,  # every CNN and RNN run
        "train_rnn": rnn_runs,
        "tables_config": 1,
        "tables": 1,
        "figures": 1,
        "all": 1,
        **({"synth_corpus": 1} if synthetic else {}),
    }


def finite_numbers_in_tsv(path: Path, columns: tuple[str, ...] = ("rmse_mean", "cc_mean", "ccc_mean")) -> list[float]:
    """The values of ``columns`` of our (not quoted) rows; asserts each is a finite number."""
    values = []
    for row in read_table(path):
        if row["source"] != "ours":
            continue
        for column in columns:
            value = float(row[column])
            assert math.isfinite(value), f"{path}: {row['model']} {column} = {row[column]!r}"
            values.append(value)
    assert values, f"{path}: no computed rows"
    return values
