"""`GenVecConfig`: the one typed configuration behind the Python API, the CLI and YAML/JSON files.

A config is built in one place, `from_layers`: defaults <- file <- environment variables (`GENVEC_SERVE_PORT=8080`,
for the sections a caller names) <- overrides (`{"train.learning_rate": 5e-4}` or CLI words
`["--train.learning_rate", "5e-4"]`). Every field has a type, a default and an attribute docstring; that docstring
is the CLI's help text (`field_docs`). Building a config validates all of it at once: a `ConfigError` lists every
problem of every layer, one per line (`train.learning_rate: must be a finite number > 0, got -0.001`).

Sections (`sections.py`, each with its own checks): `model` (which backbone, how it runs, instructions), `tokens`
(the appended special tokens), `loss` (objective weights), `data` (query source, response generation, data paths),
`teacher` (the embedder of the responses), `train` (the loop); then two that configure uses of a model, `serve` (the
HTTP server) and `eval` (scoring). Reading files, override words and environment variables, and converting text to
the field types, is `parsing.py`.
"""

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from genvec.config.parsing import (
    environment_variable,
    field_docs,
    field_names,
    parse_override_words,
    read_environment,
    read_fields,
    type_problems,
)
from genvec.config.sections import (
    DEFAULT_INSTRUCTIONS,
    DataConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    ServeConfig,
    TeacherConfig,
    TokensConfig,
    TrainConfig,
)
from genvec.errors import ConfigError
from genvec.files import write_text_atomic

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "DataConfig",
    "EvalConfig",
    "GenVecConfig",
    "LossConfig",
    "ModelConfig",
    "ServeConfig",
    "TeacherConfig",
    "TokensConfig",
    "TrainConfig",
    "environment_variable",
    "field_docs",
    "field_names",
    "parse_override_words",
]

# Sections that configure a use of a model, not the model: `to_dict` leaves them out while they hold their defaults.
USE_SECTIONS = ("serve", "eval")


@dataclass(frozen=True)
class GenVecConfig:
    """Everything that defines a genvec model and how it is trained, served and evaluated; saved with every run and
    checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The frozen backbone and how it runs."""
    tokens: TokensConfig = field(default_factory=TokensConfig)
    """The appended special tokens."""
    loss: LossConfig = field(default_factory=LossConfig)
    """The training objective."""
    data: DataConfig = field(default_factory=DataConfig)
    """Query source, response generation and data file paths."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """The teacher that embeds the responses."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The training loop."""
    serve: ServeConfig = field(default_factory=ServeConfig)
    """The HTTP server (`genvec serve`)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Scoring a model (`genvec evaluate`, `evaluate_model`)."""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError("invalid configuration:\n" + "\n".join(problems))

    @classmethod
    def from_layers(
        cls,
        path: str | Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        environ_sections: Sequence[str] = (),
        overrides: Mapping[str, object] | Sequence[str] | None = None,
    ) -> "GenVecConfig":
        """The config of defaults <- the file `path` <- the variables `GENVEC_<SECTION>_<FIELD>` in `environ` of the
        sections `environ_sections` <- `overrides` (as `with_overrides` takes them), each layer replacing the fields it
        names. Validated once: one `ConfigError` lists every problem of every layer.

        Example: `GenVecConfig.from_layers("serve.yaml", environ=os.environ, environ_sections=["serve"],
        overrides={"serve.port": 9000})`.
        """
        data: dict = _read_file(Path(path)) if path is not None else {}
        problems: list[str] = []
        sources = [str(path)] if path is not None else []
        sections = [item.name for item in dataclasses.fields(cls)]
        unknown = [name for name in environ_sections if name not in sections]
        if unknown:
            raise ConfigError(f"from_layers() got environ_sections {unknown}; valid sections: {', '.join(sections)}.")
        if environ is not None and environ_sections:
            _apply(data, read_environment(cls, environ, environ_sections, problems), problems)
            prefixes = tuple(environment_variable(name) + "_" for name in environ_sections)
            variables = sorted(name for name in environ if name.startswith(prefixes))
            sources += ["environment variables " + ", ".join(variables)] if variables else []
        if overrides is not None:
            overrides = _override_mapping(overrides)
            _apply(data, overrides, problems)
            sources += ["overrides"] if overrides else []
        return _build(data, " <- ".join(sources) or "defaults", problems)

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, source: str = "config") -> "GenVecConfig":
        """Build a config from nested mappings (as read from YAML/JSON); unknown keys and bad types are errors."""
        return _build(data, source, [])

    @classmethod
    def from_file(cls, path: str | Path) -> "GenVecConfig":
        """Read a YAML (`.yaml`/`.yml`) or JSON (`.json`) config file."""
        return cls.from_dict(_read_file(Path(path)), source=str(path))

    def to_dict(self) -> dict[str, object]:
        """Nested plain dicts, ready for JSON or YAML. The `serve` and `eval` sections are left out while they hold
        their defaults: checkpoints and run directories written without them stay readable by genvec 0.1.0, whose
        reader refuses sections it does not know."""
        data = dataclasses.asdict(self)
        for name in USE_SECTIONS:
            if getattr(self, name) == type(getattr(self, name))():
                del data[name]
        return data

    def to_file(self, path: str | Path) -> None:
        """Write the config as YAML (`.yaml`/`.yml`) or JSON (`.json`), atomically: the files `from_file` reads."""
        path = Path(path)
        if path.suffix not in (".yaml", ".yml", ".json"):
            raise ConfigError(f"config file {str(path)!r}: unknown extension; use .yaml, .yml or .json.")
        if path.is_dir():
            raise ConfigError(f"config file {str(path)!r} is a directory; pass a file name ending in .yaml or .json.")
        if path.suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        else:
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        write_text_atomic(path, text)

    def with_overrides(self, overrides: Mapping[str, object] | Sequence[str]) -> "GenVecConfig":
        """Return a copy with dotted fields replaced, e.g. `{"model.max_length": 256}` or
        `["--model.max_length", "256"]`.

        String values are converted to the field's type; every problem is reported in one `ConfigError`.
        """
        data = self.to_dict()
        problems: list[str] = []
        _apply(data, _override_mapping(overrides), problems)
        return _build(data, "overrides", problems)


def _read_file(path: Path) -> dict:
    """The mapping a YAML (`.yaml`/`.yml`) or JSON (`.json`) config file holds, not yet checked against the fields."""
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; pass the path of a .yaml or .json file.")
    if path.suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"config file {str(path)!r}: unknown extension; use .yaml, .yml or .json.")
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text ({err.reason}); pass a YAML or JSON file."
        ) from err
    try:
        data = json.loads(text) if path.suffix == ".json" else (yaml.safe_load(text) or {})
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"config file {str(path)!r} could not be parsed: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}.")
    return data


def _override_mapping(overrides: Mapping[str, object] | Sequence[str]) -> Mapping[str, object]:
    if isinstance(overrides, str):
        raise ConfigError(
            f"overrides must be a mapping such as {{'train.max_steps': 5}} or a list of words such as "
            f"['--train.max_steps', '5'], got the string {overrides!r}."
        )
    return overrides if isinstance(overrides, Mapping) else parse_override_words(overrides)


def _apply(data: dict, overrides: Mapping[str, object], problems: list[str]) -> None:
    """Set each dotted field of `overrides` in the nested mapping `data`; a name that is no field is a problem."""
    valid = field_names(GenVecConfig)
    for dotted, value in overrides.items():
        section, _, name = dotted.partition(".")
        if dotted not in valid:
            nearby = [other for other in valid if other.startswith(section + ".")] or valid  # its section's, if any
            problems.append(f"{dotted}: no such field; valid fields: {', '.join(nearby)}")
            continue
        if isinstance(data.setdefault(section, {}), dict):  # else read_fields reports the section that is no mapping
            data[section][name] = value


def _build(data: Mapping[str, object], source: str, problems: list[str]) -> GenVecConfig:
    """The config of the nested mapping `data`, or one `ConfigError` with `problems` and every problem of `data`."""
    values = read_fields(GenVecConfig, data, "", problems)
    if not problems:
        try:
            return GenVecConfig(**values)
        except ConfigError as err:
            problems = str(err).splitlines()[1:]
    raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(problems))


def _problems(config: GenVecConfig) -> list[str]:
    """Every problem of every section, one line each, then the checks that span sections. Values of the wrong type
    (a config built in Python) are reported alone: range checks need the right types."""
    hints = typing.get_type_hints(GenVecConfig)
    problems = []
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if not isinstance(value, hints[section.name]):
            problems.append(f"{section.name}: expected a {hints[section.name].__name__}, got {value!r:.60}")
        else:
            problems += type_problems(value, f"{section.name}.")
    if problems:
        return problems
    problems = [line for section in dataclasses.fields(config) for line in getattr(config, section.name).problems()]
    tokens = config.tokens.num_special_tokens
    if config.model.max_length < tokens + 1:
        problems.append(
            f"model.max_length: must hold one text token plus the {tokens} special tokens (>= {tokens + 1}), got "
            f"{config.model.max_length}"
        )
    return problems
