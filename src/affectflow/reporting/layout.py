"""The experiment a workflow config describes: the models the tables need, and which metrics files
make which row of which table.

One source for both sides: the workflow (``workflow/rules/common.smk``) plans its jobs on
:func:`rnn_grid` and :func:`model_runs`, and ``affectflow tables --config FILE`` lays out its
tables with :func:`tables_layout`, FILE holding :func:`tables_config` of the workflow's config
(the rule ``tables_config`` writes it), so the rows name exactly the metrics files the workflow
makes. Everything here follows from the config (a mapping, as Snakemake's ``config``) alone.

- Seeds: Table 1's rows (CNN variants, CNN+RNN nonlinearities) run every seed; the sweeps of
  Tables 2-4 run ``sweep_seeds`` (default: all seeds), so that a small budget can say so.
- Model selection: the first entry of ``selection`` picks the models of every table (the
  paper: dev); each further entry retrains, first seed only, the feature CNN (rnn.features) and
  Table 1's CNN+RNN rows selected that way, shown beside them.
- The RNN grid: each of ``rnn.tables`` (Table 1's CNN+RNN rows, Tables 2-4) is one sweep (a
  mapping of settings to values) or a list of sweeps whose rows follow each other; every
  combination of a sweep's values around ``rnn.base`` is one row. Identical settings share a
  name (:func:`affectflow.contracts.rnn_name`) and are trained once.
- Dimensions: ``dimension`` is one (the paper: valence) or a list, e.g. ``[valence, arousal]`` (Aff-Wild2,
  ABAW's VA track); every model is trained and scored for each, the runs of every dimension but the first
  named ``...-{dimension}`` (:func:`affectflow.contracts.run_id`). Tables 1-5 are the first dimension's;
  with two or more, Table 6 gives Table 1's rows' CCC per dimension and P_VA (the mean of valence's and
  arousal's CCC).

This module imports nothing heavy: Snakemake loads it when it parses the workflow.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path

from ..contracts import (
    DEFAULT_FEATURE_NORM,
    DIMENSIONS_TABLE,
    RESULTS,
    SWEEP_TABLES,
    cnn_label,
    cnn_row_key,
    metrics_path,
    rnn_name,
    rnn_row_key,
    run_id,
    table_numbers,
)
from ..errors import fail

# The keys of a config that the tables read, by section (None: the whole value); tables_config keeps these.
TABLES_CONFIG_KEYS: dict[str, tuple[str, ...] | None] = {
    "seeds": None,
    "sweep_seeds": None,
    "selection": None,
    "dimension": None,
    "cnn": ("variants", "normalization"),
    "rnn": ("features", "base", "feature_norm", "tables"),
    "evaluate": ("partition",),
}
# A CNN+RNN row: the settings its sweep changed, and the name of the RNN config it trains.
RnnRow = tuple[dict, str]


def seed_list(value: int | list[int]) -> list[int]:
    """A config's seeds: a count (0..n-1) or a list."""
    return list(range(value)) if isinstance(value, int) else list(value)


def seeds(config: Mapping) -> list[int]:
    """Every seed: Table 1's rows run all of them."""
    return seed_list(config["seeds"])


def sweep_seeds(config: Mapping) -> list[int]:
    """The seeds of the sweeps of Tables 2-4 (default: all seeds)."""
    return seed_list(config.get("sweep_seeds", config["seeds"]))


def model_selections(config: Mapping) -> list[str]:
    """The model selections, the headline one (which picks every table's models) first."""
    selection = config["selection"]
    return [selection] if isinstance(selection, str) else list(selection)


def dimensions(config: Mapping) -> list[str]:
    """The dimensions every model is trained and scored for, the first (Tables 1-5's) first."""
    dimension = config["dimension"]
    return [dimension] if isinstance(dimension, str) else list(dimension)


def table_names(config: Mapping) -> tuple[str, ...]:
    """The tables' numbers: 1-5, and 6 (CCC per dimension, P_VA) with two or more dimensions."""
    return table_numbers(len(dimensions(config)))


def runs(config: Mapping, of_seeds: list[int], selection: str | None = None, dimension: str | None = None) -> list[str]:
    """The run names of seeds ``of_seeds`` with the models chosen by ``selection`` (default: the headline
    one), trained for ``dimension`` (default: the first)."""
    headline, first = model_selections(config)[0], dimensions(config)[0]
    return [run_id(seed, selection or headline, headline, dimension or first, first) for seed in of_seeds]


def rnn_grid(config: Mapping) -> tuple[dict[str, list[RnnRow]], dict[str, dict]]:
    """The RNN ablation grid: the rows of each of ``rnn.tables`` (table -> [(swept, name)]) and the
    settings of every RNN config by name."""
    base = config["rnn"]["base"]
    tables, configs = {}, {}
    for table in SWEEP_TABLES:
        sweeps = config["rnn"]["tables"][table]
        rows = []
        for sweep in sweeps if isinstance(sweeps, list) else [sweeps]:
            keys = list(sweep)
            for values in itertools.product(*(sweep[key] for key in keys)):
                swept = dict(zip(keys, values))
                settings = {**base, **swept}
                name = rnn_name(settings)
                configs[name] = settings  # identical settings share a name: trained once
                rows.append((swept, name))
        tables[table] = rows
    return tables, configs


def model_runs(config: Mapping) -> list[tuple[str, str, str]]:
    """(kind, model, run) of every model the tables need, for every dimension, sorted."""
    all_seeds, sweeps_seeds = seeds(config), sweep_seeds(config)
    rows, configs = rnn_grid(config)
    variants, features = config["cnn"]["variants"], config["rnn"]["features"]
    table1 = {name for _, name in rows["table1"]}
    swept = {name for table in SWEEP_TABLES[1:] for _, name in rows[table]}
    found = set()
    for dimension in dimensions(config):
        found |= {("cnn", v, r) for v in variants for r in runs(config, all_seeds, dimension=dimension)}
        for name in configs:
            name_seeds = set(all_seeds if name in table1 else []) | set(sweeps_seeds if name in swept else [])
            found |= {("rnn", name, r) for r in runs(config, sorted(name_seeds), dimension=dimension)}
        for selection in model_selections(config)[1:]:
            extra = runs(config, all_seeds[:1], selection, dimension)
            found |= {("cnn", features, r) for r in extra}
            found |= {("rnn", name, r) for name in table1 for r in extra}
    return sorted(found)


def rnn_label(swept: Mapping) -> str:
    """A CNN+RNN row's label: the settings its sweep changed, e.g. ``CNN+RNN (nonlinearity=tanh)``."""
    return "CNN+RNN ({})".format(", ".join(f"{key}={value}" for key, value in swept.items()))


def tables_config(config: Mapping) -> dict:
    """The part of a workflow config that the tables read (TABLES_CONFIG_KEYS), in the config's order:
    what ``affectflow tables --config`` needs, and all that changes them."""
    kept = {}
    for key, value in config.items():
        if key not in TABLES_CONFIG_KEYS:
            continue
        section = TABLES_CONFIG_KEYS[key]
        kept[key] = value if section is None else {k: v for k, v in value.items() if k in section}
    return kept


def tables_config_path(results: str = RESULTS) -> str:
    """Where the workflow writes :func:`tables_config` of its config: beside the tables."""
    return f"{results}/tables/config.yaml"


def tables_layout(config: Mapping) -> dict:
    """Tables 1-5 of ``affectflow tables`` (the first dimension's): per table, its rows, each with its label,
    its row key, its metrics files (one per seed) and, for Table 1, the same model picked by each further
    selection. With two or more dimensions, Table 6: Table 1's rows, each also with ``dimensions``, its
    metrics files (one per seed, in the same seed order) for every dimension."""
    config = tables_config(config)  # a key read here but not kept for the tables' file fails every test
    all_seeds = seeds(config)
    all_dimensions = dimensions(config)
    selections = model_selections(config)
    features = config["rnn"]["features"]
    rows, _ = rnn_grid(config)

    def selected_elsewhere(kind: str, model: str) -> dict[str, list[str]]:
        """Table 1's extra columns: the model selected by each non-headline selection (first seed)."""
        return {
            selection: [metrics_path(kind, model, run) for run in runs(config, all_seeds[:1], selection)]
            for selection in selections[1:]
        }

    def cnn_row(variant: str) -> dict:
        return {
            "label": cnn_label(variant),
            "key": cnn_row_key(variant),
            "metrics": [metrics_path("cnn", variant, run) for run in runs(config, all_seeds)],
            # the CNN whose features feed the RNNs is retrained for each further selection anyway
            "selected": selected_elsewhere("cnn", variant) if variant == features else {},
        }

    def rnn_row(swept: dict, name: str, row_seeds: list[int], with_selections: bool = False) -> dict:
        return {
            "label": rnn_label(swept),
            "key": rnn_row_key(swept),
            "metrics": [metrics_path("rnn", name, run) for run in runs(config, row_seeds)],
            "selected": selected_elsewhere("rnn", name) if with_selections else {},
        }

    cnn_rows = [cnn_row(v) for v in config["cnn"]["variants"]]
    table1 = cnn_rows + [rnn_row(swept, name, all_seeds, True) for swept, name in rows["table1"]]
    sweeps = {t: [rnn_row(swept, name, sweep_seeds(config)) for swept, name in rows[t]] for t in SWEEP_TABLES[1:]}

    def by_dimension(row: dict, kind: str, model: str) -> dict:
        """Table 6's row: Table 1's, with its metrics files (one per seed, in order) for every dimension."""
        return {
            **row,
            "selected": {},
            "dimensions": {
                dimension: [metrics_path(kind, model, run) for run in runs(config, all_seeds, dimension=dimension)]
                for dimension in all_dimensions
            },
        }

    table6 = [by_dimension(row, "cnn", v) for row, v in zip(cnn_rows, config["cnn"]["variants"])] + [
        by_dimension(row, "rnn", name) for row, (_, name) in zip(table1[len(cnn_rows) :], rows["table1"])
    ]
    return {
        "partition": config["evaluate"]["partition"],
        "dimension": all_dimensions[0],
        "dimensions": all_dimensions,
        "rnn_features": cnn_label(features),
        "rnn_base": config["rnn"]["base"],
        "rnn_feature_norm": config["rnn"].get("feature_norm", DEFAULT_FEATURE_NORM),
        "cnn_normalization": config["cnn"]["normalization"],
        "selection": selections[0],
        "tables": {
            "1": table1,
            "2": sweeps["table2"],
            "3": sweeps["table3"],
            "4": sweeps["table4"],
            "5": table1,
            **({DIMENSIONS_TABLE: table6} if DIMENSIONS_TABLE in table_names(config) else {}),
        },
    }


def config_file_layout(path: str | os.PathLike) -> dict:
    """:func:`tables_layout` of a config file (YAML or JSON), its problems named after the file."""
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise fail(path, f"cannot read the config: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise fail(path, f"config is not YAML: {error}") from None
    if not isinstance(config, dict):
        raise fail(path, "config is not a mapping")
    try:
        return tables_layout(config)
    except KeyError as error:
        raise fail(path, f"not a workflow config: no key {error}") from None
    except (AttributeError, TypeError) as error:
        raise fail(path, f"not a workflow config: {error}") from None
