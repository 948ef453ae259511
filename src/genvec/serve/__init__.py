"""`genvec serve`: an OpenAI-compatible embedding server that also decodes (`app.py`), its request checks
(`protocol.py`) and its batching (`batcher.py`); `serve` starts one with uvicorn.

Its settings are the `serve` section of `GenVecConfig` (`ServeConfig`); the CLI builds it from a config file, the
`GENVEC_SERVE_<FIELD>` environment variables and its flags (`GenVecConfig.from_layers`). The API key is no config
field, so that it is never written into a config file: `serve(api_key=...)`, or `GENVEC_API_KEY` for the CLI.

Needs the `serve` extra (`pip install 'genvec[serve]'`: fastapi, uvicorn, prometheus-client).
"""

from pathlib import Path

from genvec.config import GenVecConfig, ServeConfig
from genvec.errors import InputError

API_KEY_VARIABLE = "GENVEC_API_KEY"


def serve(model: str | Path, config: ServeConfig | None = None, *, device: str = "auto", dtype: str | None = None,
          backbone: str | None = None, api_key: str | None = None) -> None:
    """Serve the checkpoint `model` until interrupted (SIGINT / SIGTERM finish the requests in flight first).

    Raises:
        InputError: the `serve` extra is missing. ConfigError: a bad setting.
    """
    config = GenVecConfig(serve=config or ServeConfig()).serve  # a ConfigError lists every problem of the section
    try:
        import uvicorn

        from genvec.serve.app import create_app
    except ImportError as err:
        raise InputError(f"genvec serve needs the serve extra: pip install 'genvec[serve]' ({err}).") from err
    from genvec.loading import load_model

    name = config.model_name or (Path(model).name if Path(model).exists() else str(model))
    app = create_app(lambda: load_model(model, backbone=backbone, device=device, dtype=dtype), config,
                     api_key=api_key, model_name=name)
    uvicorn.run(app, host=config.host, port=config.port, log_config=None, access_log=False,
                timeout_graceful_shutdown=30)
