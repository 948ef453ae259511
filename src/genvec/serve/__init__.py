"""`genvec serve`: an OpenAI-compatible embedding server that also decodes (`app.py`), its request checks
(`protocol.py`) and its batching (`batcher.py`); `serve` starts one with uvicorn.

Needs the `serve` extra (`pip install 'genvec[serve]'`: fastapi, uvicorn, prometheus-client).
"""

import os
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path

from genvec.config.sections import ServeConfig
from genvec.errors import ConfigError, InputError

API_KEY_VARIABLE = "GENVEC_API_KEY"
ENV_PREFIX = "GENVEC_SERVE_"


def serve_config_from_env(environ: Mapping[str, str] | None = None, base: ServeConfig | None = None) -> ServeConfig:
    """`base` with every `GENVEC_SERVE_<FIELD>` variable applied (converted to the field's type).

    Raises:
        ConfigError: a variable that is not a valid value of its field.
    """
    environ = os.environ if environ is None else environ
    base = ServeConfig() if base is None else base
    changes, problems = {}, []
    for item in fields(ServeConfig):
        name = ENV_PREFIX + item.name.upper()
        if name not in environ:
            continue
        text = environ[name]
        default = getattr(ServeConfig(), item.name)
        try:
            changes[item.name] = int(text) if isinstance(default, int) else text
        except ValueError:
            problems.append(f"{name}: must be an integer, got {text!r}")
    if problems:
        raise ConfigError("\n".join(problems))
    return replace(base, **changes)


def check_serve_config(config: ServeConfig) -> ServeConfig:
    problems = config.problems()
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def serve(model: str | Path, config: ServeConfig | None = None, *, device: str = "auto", dtype: str | None = None,
          backbone: str | None = None, api_key: str | None = None) -> None:
    """Serve the checkpoint `model` until interrupted (SIGINT / SIGTERM finish the requests in flight first).

    Raises:
        InputError: the `serve` extra is missing. ConfigError: a bad setting.
    """
    try:
        import uvicorn

        from genvec.serve.app import create_app
    except ImportError as err:
        raise InputError(f"genvec serve needs the serve extra: pip install 'genvec[serve]' ({err}).") from err
    from genvec.loading import load_model

    config = check_serve_config(config or ServeConfig())
    name = config.model_name or (Path(model).name if Path(model).exists() else str(model))
    app = create_app(lambda: load_model(model, backbone=backbone, device=device, dtype=dtype), config,
                     api_key=api_key, model_name=name)
    uvicorn.run(app, host=config.host, port=config.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=30)
