"""Config validation at parse time: every value a command would refuse stops `snakemake -n`,
with the config key named (workflow/rules/common.smk, workflow/schemas/config.schema.yaml).

The table below applies one bad value (or a few) to a copy of config/tiny.yaml and dry-runs the
workflow on it. The dry runs go through Snakemake's Python API inside this process (a fraction
of a second each); `test_the_command_line_refuses_a_bad_config` checks that `snakemake -n` on
the command line exits non-zero with the same messages. The schema's enumerations are held
equal to the package constants and CLI choices they repeat, so that they cannot drift.
"""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

import pytest
import yaml

from affectflow import contracts
from helpers import REPO, snakemake
from workflow_helpers import (
    DELETE,
    dry_run_in_process,
    make_placeholder_recola,
    set_key,
    write_config,
)

TINY = REPO / "config" / "tiny.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def case(key, value, expect=None, also=None, id=None):
    """A bad config: `key` set to `value` (and the keys of `also`), refused with `expect`
    (default: the key) in the message."""
    return pytest.param(key, value, expect or key, also or {}, id=id or f"{key}={value!r}")


# (dotted config key, bad value[, text the error must contain, other keys to change]).
CASES = [
    # the corpus
    case("corpus.path", ""),
    case("corpus.synthetic.subjects", [2, 0, 1], id="no dev subjects"),
    case("corpus.synthetic.subjects", [2, 1]),
    case("corpus.synthetic.seconds", 0),
    case("corpus.synthetic.size", "640"),
    # top-level choices
    case("partitions", ["train"]),
    case("partitions", ["train", "dev", "holdout"]),
    case("partitions", ["train", "dev", "dev"]),
    case("seeds", 0),
    case("seeds", []),
    case("seeds", [0, 0]),
    case("seeds", [-1]),
    case("seeds", 1.5),
    case("seeds", "3"),
    case("sweep_seeds", 0),
    case("sweep_seeds", [0, 0]),
    case("sweep_seeds", [3], id="sweep_seeds not a subset of seeds"),
    case("dimension", "dominance"),
    case("dimension", []),
    case("dimension", ["valence", "valence"]),
    case("dimension", ["valence", "dominance"]),
    case("selection", "test"),
    case("selection", ["dev", "test"]),
    case("selection", []),
    case("selection", ["dev", "dev"]),
    case("device", "tpu"),
    case("evaluate.partition", "holdout"),
    case("evaluate.partition", "test", id="evaluate.partition not in partitions"),
    case("evaluate", {}, expect="'partition' is a required property", id="evaluate.partition missing"),
    case("figures.cnn", "D", id="figures.cnn not in cnn.variants"),
    case("figures.subject", "train_1", id="figures.subject not an evaluation subject"),
    case("surplus", 1, expect="'surplus' was unexpected"),
    # alignment
    case("align.chip_size", 50),
    case("align.chip_size", 12),
    case("align.chip_size", 48.0, id="align.chip_size=48.0 (not an integer)"),
    case("align.landmarks", 7),
    case("align.normalization", "zca"),
    case("align.detect_every", 0),
    case("align.tracking", "yes"),
    case("align.threads", 0),
    case("align.source", "dlib"),
    case("align.source", "release", expect="align.source: release needs an Aff-Wild2 corpus", id="release, synthetic"),
    # the CNN
    case("cnn.normalization", "bogus"),
    case("cnn.variants", ["plain", "X"], expect="'X' is not one of"),
    case("cnn.variants", []),
    case("cnn.epochs", 0),
    case("cnn.epochs", {"plain": 1, "X": 1}, id="cnn.epochs unknown variant"),
    case("cnn.epochs", {"plain": 1}, id="cnn.epochs variant missing"),
    case("cnn.epochs", {"plain": 1, "AD": 0}),
    case("cnn.threads", 0),
    case("cnn.options.channels", "8,16"),
    case("cnn.options.channels", [8, 16, 32]),
    case("cnn.options.fc", 0),
    case("cnn.options.frame_stride", 0),
    case("cnn.options.init", "xavier"),
    case("cnn.options.lr", 0),
    case("cnn.options.batch_size", 0),
    case("cnn.options.label_shift", -0.5),
    case("cnn.options.label_shift", "later"),
    case("cnn.options.max_minutes", 0),
    case("cnn.options.eval_stride", 0),
    case("cnn.options.variant", "AD", expect="'variant' was unexpected", id="cnn.options sets a rule's flag"),
    case("cnn.options.not_an_option", 1, expect="'not_an_option' was unexpected"),
    # the RNN
    case("rnn.features", "D", id="rnn.features not in cnn.variants"),
    case("rnn.features", "X"),
    case("rnn.base.cell", "transformer"),
    case("rnn.base.nonlinearity", "sigmoid"),
    case("rnn.base.hidden", 0),
    case("rnn.base.hidden", 8.5),
    case("rnn.base.window", 0),
    case("rnn.base.layers", 0),
    case("rnn.base.layers", 4),
    case("rnn.base.window", DELETE, expect="'window' is a required property", id="rnn.base.window missing"),
    case("rnn.epochs", 0),
    case("rnn.threads", 0),
    case("rnn.loss", "mae"),
    case("rnn.feature_norm", "global"),
    case("rnn.options.recurrent_init", "orthogonal"),
    case("rnn.options.window_stride", 0),
    case("rnn.options.clip_norm", -1),
    case("rnn.options.lr", -0.1),
    case("rnn.options.batch_size", 0),
    case("rnn.options.label_shift", -1),
    case("rnn.options.layers", 2, expect="'layers' was unexpected", id="rnn.options sets a rule's flag"),
    # the RNN sweeps of Tables 1-4
    case("rnn.tables.table1.nonlinearity", ["tanh", "sigmoid"]),
    case("rnn.tables.table1", [{"nonlinearity": ["tanh"]}, {"layers": [5]}], expect="rnn.tables.table1[1].layers"),
    case("rnn.tables.table1", {}, expect="rnn.tables.table1"),
    case("rnn.tables.table2.hidden", [0]),
    case("rnn.tables.table2.hidden", []),
    case("rnn.tables.table3.window", [0, 5]),
    case("rnn.tables.table4.layers", [1, 4]),
    case("rnn.tables.table4.depth", [1], expect="'depth' was unexpected"),
    case("rnn.tables.table4", DELETE, expect="'table4' is a required property", id="rnn.tables.table4 missing"),
    case("rnn.tables.table5", {"hidden": [8]}, expect="'table5' was unexpected"),
    case(
        "rnn.tables.table1",
        {"nonlinearity": ["relu"]},
        expect="rnn.base",
        also={
            "rnn.tables.table2": {"hidden": [16]},
            "rnn.tables.table3": {"window": [5]},
            "rnn.tables.table4": {"layers": [2]},
        },
        id="rnn.base not trained by any sweep (Figure 3)",
    ),
]


def _bad_config(tmp_path: Path, key, value, also) -> Path:
    config = yaml.safe_load(TINY.read_text())
    for k, v in {key: value, **also}.items():
        set_key(config, k, v if v is DELETE else copy.deepcopy(v))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_tiny_config_itself_passes(tmp_path):
    """The table's cases start from config/tiny.yaml: it must pass, or every case passes for nothing."""
    assert dry_run_in_process(tmp_path, TINY) is None


@pytest.mark.parametrize("key, value, expect, also", CASES)
def test_a_bad_config_value_is_refused_at_parse_time_naming_its_key(tmp_path, key, value, expect, also):
    error = dry_run_in_process(tmp_path, _bad_config(tmp_path, key, value, also))
    assert error is not None, f"config {key}={value!r} was accepted"
    assert "WorkflowError" in error and expect in error, error
    assert not (tmp_path / "results").exists()  # refused before any job


def test_every_config_in_config_dir_passes(tmp_path):
    """config/config.yaml, config/tiny.yaml, and config/recola.yaml on a placeholder corpus."""
    for name in ("config.yaml", "tiny.yaml"):
        (tmp_path / name).mkdir()
        assert dry_run_in_process(tmp_path / name, REPO / "config" / name) is None, name
    corpus = make_placeholder_recola(tmp_path / "AVEC2015")
    recola = write_config(tmp_path / "recola.yaml", REPO / "config" / "recola.yaml", corpus={"path": str(corpus)})
    assert dry_run_in_process(tmp_path, recola) is None


def test_a_missing_corpus_is_refused_naming_corpus_path(tmp_path):
    config = write_config(
        tmp_path / "recola.yaml", REPO / "config" / "recola.yaml", corpus={"path": str(tmp_path / "nowhere")}
    )
    error = dry_run_in_process(tmp_path, config)
    assert error is not None and "corpus.path" in error, error


def test_every_problem_is_listed_at_once(tmp_path):
    path = _bad_config(tmp_path, "align.chip_size", 50, {"rnn.base.layers": 4, "device": "tpu"})
    error = dry_run_in_process(tmp_path, path)
    assert all(key in error for key in ("align.chip_size", "rnn.base.layers", "device")), error


# A few cases again through the command line: `snakemake -n` exits non-zero with the message.
@pytest.mark.slow
@pytest.mark.parametrize(
    "key, value, expect, also",
    [
        case("cnn.variants", ["plain", "X"], expect="'X' is not one of"),
        case("seeds", 0),
        case("rnn.features", "D", id="rnn.features not in cnn.variants"),
        case("partitions", ["train"]),
        case("align.chip_size", 50, expect="multiple of 4"),
        case("rnn.tables.table4.layers", [1, 4], expect="4 is greater than"),
        case("selection", ["dev", "test"]),
        case("sweep_seeds", [3], id="sweep_seeds not a subset of seeds"),
    ],
)
def test_the_command_line_refuses_a_bad_config(tmp_path, key, value, expect, also):
    result = snakemake(tmp_path, "-n", "--configfile", str(_bad_config(tmp_path, key, value, also)))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert expect in output and key.split(".")[-1] in output, output[-3000:]


# ---- the schema's enumerations against what they repeat


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _enum(name: str) -> list:
    return _schema()["$defs"][name]["enum"]


def _package_constant(name: str):
    return {
        "partition": contracts.PARTITIONS,
        "dimension": contracts.DIMENSIONS,
        "selection": contracts.SELECTIONS,
        "cnn_variant": tuple(contracts.CNN_VARIANTS),
        "normalization": contracts.NORMALIZATIONS,
        "feature_norm": contracts.FEATURE_NORMS,
        "init": contracts.INITS,
        "recurrent_init": contracts.RECURRENT_INITS,
        "face_source": contracts.FACE_SOURCES,
    }[name]


@pytest.mark.parametrize(
    "name",
    [
        "partition",
        "dimension",
        "selection",
        "cnn_variant",
        "normalization",
        "feature_norm",
        "init",
        "recurrent_init",
        "face_source",
    ],
)
def test_schema_enumerations_equal_the_package_constants(name):
    assert tuple(_enum(name)) == tuple(_package_constant(name))


def test_the_schema_requires_exactly_the_sweep_tables():
    tables = _schema()["properties"]["rnn"]["properties"]["tables"]
    assert tuple(tables["required"]) == contracts.SWEEP_TABLES == tuple(tables["properties"])


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from affectflow.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _option(command: str, flag: str) -> argparse.Action:
    parser = _subcommands()[command]
    return next(a for a in parser._actions if flag in a.option_strings)


@pytest.mark.parametrize(
    "name, command, flag",
    [
        ("device", "train-cnn", "--device"),
        ("device", "train-rnn", "--device"),
        ("device", "extract", "--device"),
        ("selection", "train-cnn", "--selection"),
        ("selection", "train-rnn", "--selection"),
        ("cnn_variant", "train-cnn", "--variant"),
        ("normalization", "train-cnn", "--normalization"),
        ("normalization", "align", "--normalization"),
        ("landmarks", "align", "--landmarks"),
        ("cell", "train-rnn", "--cell"),
        ("nonlinearity", "train-rnn", "--nonlinearity"),
        ("loss", "train-rnn", "--loss"),
        ("feature_norm", "train-rnn", "--feature-norm"),
        ("recurrent_init", "train-rnn", "--recurrent-init"),
        ("init", "train-cnn", "--init"),
    ],
)
def test_schema_enumerations_equal_the_command_line_choices(name, command, flag):
    assert sorted(_enum(name), key=str) == sorted(_option(command, flag).choices, key=str)


def _flags_the_rule_sets(rule_file: str) -> set[str]:
    """The flags a rule's text spells, and the RNN configuration's (contracts.rnn_flags) where it uses those."""
    from affectflow.contracts import RNN_SETTINGS

    text = (REPO / "workflow" / "rules" / rule_file).read_text()
    spelled = set(re.findall(r"--([a-z][a-z0-9-]*)", text))
    return spelled | ({name for name, _ in RNN_SETTINGS} if "rnn_flags(" in text else set())


@pytest.mark.parametrize(
    "section, command, rule_file", [("cnn", "train-cnn", "cnn.smk"), ("rnn", "train-rnn", "rnn.smk")]
)
def test_config_options_are_exactly_the_command_options_the_rule_leaves_open(section, command, rule_file):
    """cnn.options / rnn.options become command-line flags: the schema allows every optional flag of
    the command that the rule does not pass itself, and no other (no typo reaches a job)."""
    parser = _subcommands()[command]
    open_flags = {
        action.option_strings[-1][2:]
        for action in parser._actions
        if action.option_strings
        and not action.required
        and action.help != argparse.SUPPRESS
        and not isinstance(action, argparse._HelpAction)
    } - _flags_the_rule_sets(rule_file)
    options = _schema()["properties"][section]["properties"]["options"]
    assert options["additionalProperties"] is False
    assert {key.replace("_", "-") for key in options["properties"]} == open_flags
