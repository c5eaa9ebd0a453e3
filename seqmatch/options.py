"""Options of the seqmatch CLIs from one config file.

``--config FILE`` (JSON, or YAML for any other suffix) is a mapping from option names to values.
The names are the options' argparse ``dest`` names, which are config.yaml's key names
(``tasks.<task>.eval.n_eval`` is ``n_eval`` here and ``--n-eval`` on the command line), so a value
keeps one name from config.yaml to the code. Flags given as well override the file. The workflow
writes one file per job (``seqmatch.runs.Grid``) and runs ``python -m seqmatch.<cli> ... --config
FILE``. Torch-free.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Sequence


def config_field(default=None, help_text: str = "", *, factory=None):
    """A SequenceMatchConfig/ModelConfig field with its help text (``python -m seqmatch.train --help``
    shows it; tests/test_train.py checks the workflow schema against the fields)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help_text})
    return dataclasses.field(default=default, metadata={"help": help_text})


def read_config_file(path: str) -> dict:
    """The mapping in a JSON (``.json``) or YAML file; ValueError naming the file otherwise."""
    import yaml

    kind = "JSON" if str(path).endswith(".json") else "YAML"
    try:
        text = Path(path).read_text()
        cfg = json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ValueError(f"--config {path}: cannot read it as {kind}: {e}") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values, "
                         f"got {type(cfg).__name__}")
    return cfg


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="JSON/YAML file of option values under the names of config.yaml "
                             "(option names with '_'); flags given as well override it")


def _target(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser whose options the file sets: the chosen subcommand's (the first token that is
    not an option or the file's name), if the parser has subcommands."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return parser
    tokens = iter(argv)
    for token in tokens:
        if token == "--config":
            next(tokens, None)
        elif not token.startswith("-"):
            return subparsers[0].choices.get(token, parser)
    return parser


def _scalar(action: argparse.Action, value):
    if isinstance(value, (list, tuple, dict)):
        raise ValueError(f"expected one value, got {value!r}")
    if value is None or action.type is None:
        return value
    if isinstance(value, bool):  # str(True) is no number: say so rather than read it as 1
        raise ValueError(f"expected {getattr(action.type, '__name__', 'a value')}, got {value!r}")
    return action.type(value if isinstance(value, str) else str(value))


def _convert(action: argparse.Action, value):
    """A file value as the command line would give it: the option's type applied to each value,
    a list exactly where the option takes several (nargs), a true/false for a switch."""
    if action.nargs == 0:  # store_true / store_false
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if action.nargs in ("+", "*") or isinstance(action.nargs, int):
        if value is None and action.nargs != "+":
            return value
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        if isinstance(action.nargs, int) and len(value) != action.nargs:
            raise ValueError(f"expected a list of {action.nargs} values, got {len(value)}")
        if action.nargs == "+" and not value:
            raise ValueError("expected a list of at least one value")
        return [_scalar(action, v) for v in value]
    return _scalar(action, value)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with the values of ``--config FILE`` as defaults. An unknown
    name, a value the option's type or choices reject, or an unreadable file is one error (exit 2)
    naming the file and the key; options the file sets are no longer required on the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    path = pre.parse_known_args(argv)[0].config
    if not path:
        return parser.parse_args(argv)
    target = _target(parser, argv)
    try:
        values = read_config_file(path)
    except ValueError as e:
        target.error(str(e))
    actions = {a.dest: a for a in target._actions if a.dest not in (argparse.SUPPRESS, "help", "config")}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        target.error(f"--config {path}: unknown key(s) {', '.join(unknown)} "
                     f"(expected some of: {', '.join(sorted(actions))})")
    defaults = {}
    for dest, value in values.items():
        action = actions[dest]
        try:
            value = _convert(action, value)
        except (TypeError, ValueError) as e:
            target.error(f"--config {path}: key '{dest}' = {values[dest]!r}: {e}")
        if action.choices is not None and value is not None:
            for v in value if isinstance(value, list) else [value]:
                if v not in action.choices:
                    target.error(f"--config {path}: key '{dest}' = {v!r}: expected one of "
                                 f"{', '.join(map(str, action.choices))}")
        if value is None and action.required:
            target.error(f"--config {path}: key '{dest}' is null, but the option is required")
        defaults[dest] = value
    # the file's values become this call's defaults; the parser is left as it was afterwards
    saved = {dest: (actions[dest].required, actions[dest].default) for dest in defaults}
    try:
        for dest, value in defaults.items():
            actions[dest].required = False
            actions[dest].default = value
        args = parser.parse_args(argv)
        args.config = path  # the subcommand's own --config (None) would hide one given before it
        return args
    finally:
        for dest, (required, default) in saved.items():
            actions[dest].required, actions[dest].default = required, default
