"""`GenVecConfig`: the one typed configuration behind the Python API, the CLI and YAML/JSON files.

A config is built in one place: defaults <- file <- overrides (`{"train.learning_rate": 5e-4}` or CLI words
`["--train.learning_rate", "5e-4"]`). Every field has a type, a default and an attribute docstring; that docstring
is the CLI's help text (`field_docs`). Building a config validates all of it at once: a `ConfigError` lists every
problem, one per line (`train.learning_rate: must be a finite number > 0, got -0.001`).

Sections (`sections.py`, each with its own checks): `model` (which backbone, how it runs, instructions), `tokens`
(the appended special tokens), `loss` (objective weights), `data` (query source, response generation, data paths),
`teacher` (the embedder of the responses), `train` (the loop). Reading files and override words, and converting
text to the field types, is `parsing.py`.
"""

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from genvec.config.parsing import field_docs, field_names, parse_override_words, read_fields, type_problems
from genvec.config.sections import (
    DEFAULT_INSTRUCTIONS,
    DataConfig,
    LossConfig,
    ModelConfig,
    TeacherConfig,
    TokensConfig,
    TrainConfig,
)
from genvec.errors import ConfigError
from genvec.files import write_text_atomic

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "DataConfig",
    "GenVecConfig",
    "LossConfig",
    "ModelConfig",
    "TeacherConfig",
    "TokensConfig",
    "TrainConfig",
    "field_docs",
    "field_names",
    "parse_override_words",
]


@dataclass(frozen=True)
class GenVecConfig:
    """Everything that defines a genvec model and how it is trained; saved with every run and checkpoint."""

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

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ConfigError("invalid configuration:\n" + "\n".join(problems))

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, source: str = "config") -> "GenVecConfig":
        """Build a config from nested mappings (as read from YAML/JSON); unknown keys and bad types are errors."""
        problems: list[str] = []
        values = read_fields(cls, data, "", problems)
        if not problems:
            try:
                return cls(**values)
            except ConfigError as err:
                problems = str(err).splitlines()[1:]
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(problems))

    @classmethod
    def from_file(cls, path: str | Path) -> "GenVecConfig":
        """Read a YAML (`.yaml`/`.yml`) or JSON (`.json`) config file."""
        path = Path(path)
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
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, object]:
        """Nested plain dicts, ready for JSON or YAML."""
        return dataclasses.asdict(self)

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
        """Return a copy with dotted fields replaced, e.g. `{"model.max_length": 256}` or `["--model.max_length", "256"]`.

        String values are converted to the field's type; every problem is reported in one `ConfigError`.
        """
        if isinstance(overrides, str):
            raise ConfigError(
                f"overrides must be a mapping such as {{'train.max_steps': 5}} or a list of words such as "
                f"['--train.max_steps', '5'], got the string {overrides!r}."
            )
        if not isinstance(overrides, Mapping):
            overrides = parse_override_words(overrides)
        data = self.to_dict()
        problems = []
        for dotted, value in overrides.items():
            section, _, name = dotted.partition(".")
            if section not in data or not name or name not in data[section]:
                problems.append(f"{dotted}: no such field; valid fields: {', '.join(field_names(GenVecConfig))}")
                continue
            data[section][name] = value
        if problems:
            raise ConfigError("invalid overrides:\n" + "\n".join(problems))
        return GenVecConfig.from_dict(data, source="overrides")


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
