"""Turning text into config values: CLI override words, environment variables, YAML/JSON values checked against the
field types, and the field names and docstrings of a config dataclass (the CLI's flags and help). Generic over
dataclasses: nothing here knows genvec's sections.
"""

import ast
import dataclasses
import inspect
import itertools
import json
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Literal

from genvec.errors import ConfigError

ENV_PREFIX = "GENVEC_"


def parse_override_words(words: Sequence[str]) -> dict[str, str]:
    """Turn `["--train.lr", "1e-4", "--model.dtype=bf16"]` into `{"train.lr": "1e-4", "model.dtype": "bf16"}`."""
    overrides: dict[str, str] = {}
    words = list(words)
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("--") or "." not in word:
            raise ConfigError(f"override {word!r}: expected '--section.field VALUE' or '--section.field=VALUE'.")
        key, has_value, value = word[2:].partition("=")
        if not has_value:
            if index + 1 >= len(words):
                raise ConfigError(f"override {word!r} has no value; write '{word} VALUE'.")
            index += 1
            value = words[index]
        overrides[key] = value
        index += 1
    return overrides


def environment_variable(dotted: str) -> str:
    """The environment variable of a dotted field: `serve.max_inputs` -> `GENVEC_SERVE_MAX_INPUTS`."""
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def read_environment(cls: type, environ: Mapping[str, str], sections: Sequence[str],
                     problems: list[str]) -> dict[str, object]:
    """Typed values by dotted name from the variables `GENVEC_<SECTION>_<FIELD>` of the given sections of the config
    class `cls`: `GENVEC_SERVE_PORT=8080` -> `{"serve.port": 8080}`. A variable with a section's prefix that names no
    field, or whose text is not a value of its field, is a problem named after the variable (collected, not raised).
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, object] = {}
    for section in sections:
        section_hints = typing.get_type_hints(hints[section])
        variables = {environment_variable(f"{section}.{name}"): name for name in section_hints}
        prefix = environment_variable(section) + "_"
        for variable in sorted(name for name in environ if name.startswith(prefix)):
            if variable not in variables:
                problems.append(f"{variable}: no such setting; valid variables: {', '.join(variables)}")
                continue
            name = variables[variable]
            try:
                values[f"{section}.{name}"] = _convert(environ[variable], section_hints[name])
            except (TypeError, ValueError) as err:
                problems.append(f"{variable}: {err}")
    return values


def field_names(cls: type) -> list[str]:
    """Dotted names of every leaf field of a config class, e.g. `model.backbone`."""
    names = []
    for item in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[item.name]
        if dataclasses.is_dataclass(hint):
            names += [f"{item.name}.{sub}" for sub in field_names(hint)]
        else:
            names.append(item.name)
    return names


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass, by field name (the CLI's help text)."""
    source = textwrap.dedent(inspect.getsource(cls))
    body = ast.parse(source).body[0].body
    docs = {}
    for node, following in itertools.pairwise(body):
        is_field = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        if is_field and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def read_fields(cls: type, data: object, prefix: str, problems: list[str]) -> dict[str, object]:
    """Convert a mapping into constructor arguments of dataclass `cls`, collecting problems instead of raising."""
    if not isinstance(data, Mapping):
        problems.append(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
        return {}
    hints = typing.get_type_hints(cls)
    known = [item.name for item in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown field; valid fields: {', '.join(known)}")
    values = {}
    for name in known:
        if name not in data:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = hint(**read_fields(hint, data[name], f"{prefix}{name}.", problems))
            continue
        try:
            values[name] = _convert(data[name], hint)
        except (TypeError, ValueError) as err:
            problems.append(f"{prefix}{name}: {err}")
    return values


def _convert(value: object, hint: object) -> object:
    """Convert `value` to the annotated type; CLI strings are parsed. Raises ValueError with a readable reason."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if value in args:
            return value
        raise ValueError(f"must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (dict, list, tuple):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise ValueError(f"expected JSON for a {origin.__name__}, got {value!r}") from err
        if origin is dict:
            if not isinstance(value, Mapping):
                raise ValueError(f"expected a mapping, got {value!r}")
            return {_convert(k, args[0]): _convert(v, args[1]) for k, v in value.items()}
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        if origin is tuple and Ellipsis not in args and len(value) != len(args):
            raise ValueError(f"expected a list of {len(args)} items, got {len(value)}: {value!r}")
        items = [_convert(item, args[0]) for item in value]
        return items if origin is list else tuple(items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError as err:
            raise ValueError(f"expected an integer, got {value!r}") from err
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError as err:
            raise ValueError(f"expected a number, got {value!r}") from err
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {hint!r}")


def type_problems(instance: object, prefix: str) -> list[str]:
    """`prefix.field: expected TYPE, got VALUE` for every field of a dataclass instance whose value does not have
    its annotated type (values built in Python, not parsed from text: `TrainConfig(max_steps="5")`)."""
    hints = typing.get_type_hints(type(instance))
    return [
        f"{prefix}{item.name}: expected {_type_name(hints[item.name])}, got {getattr(instance, item.name)!r}"
        for item in dataclasses.fields(instance)
        if not _matches(getattr(instance, item.name), hints[item.name])
    ]


def _matches(value: object, hint: object) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if origin is dict:
        return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    if origin in (list, tuple):
        if not isinstance(value, origin):
            return False
        if origin is tuple and Ellipsis not in args and len(value) != len(args):
            return False
        return all(_matches(item, args[0]) for item in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _type_name(hint: object) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
