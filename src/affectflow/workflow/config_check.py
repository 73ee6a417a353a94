"""A workflow config against its schema: every violation as one line, the config key named.

``workflow/rules/common.smk`` refuses a config with these lines at parse time, before
Snakemake's own ``validate`` (which stops at the first violation and sets the schema's
defaults). Needs jsonschema, which Snakemake brings (the ``workflow`` extra).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping


def config_key(path: Iterable) -> str:
    """A config key as dotted text: ``rnn.tables.table4.layers[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text or "(the config)"


def schema_problems(config: Mapping, schema: str | os.PathLike) -> list[str]:
    """Every violation of the JSON schema (a YAML file) by ``config``, one line each, sorted, keys named.

    Stricter than snakemake.utils.validate on one point: an integer must be written as one (8, not 8.0).
    """
    import jsonschema
    import yaml

    with open(schema) as f:
        rules = yaml.safe_load(f)
    base = jsonschema.Draft202012Validator
    strict = jsonschema.validators.extend(
        base,
        type_checker=base.TYPE_CHECKER.redefine("integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool)),
    )
    problems = []
    for error in strict(rules).iter_errors(config):
        message = error.message
        # oneOf / anyOf: what the alternatives for the value's type wanted
        if error.context:
            subs = [e for e in error.context if e.validator != "type"] or error.context
            reasons = []
            for sub in subs:
                where = config_key(sub.absolute_path)
                reason = sub.message + (f" ({where})" if sub.absolute_path != error.absolute_path else "")
                if reason not in reasons:
                    reasons.append(reason)
            message += ": " + "; or ".join(reasons)
        problems.append(f"config {config_key(error.absolute_path)}: {message}")
    return sorted(problems)
