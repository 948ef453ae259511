"""`genvec serve`: an OpenAI-compatible embedding server that also decodes (`app.py`), its request checks
(`protocol.py`), the other servers' routes (`dialects.py`: TEI, Ollama, Cohere / Jina rerank, vLLM score), its
batching (`batcher.py`) and its traces (`tracing.py`); `serve` starts one with uvicorn.

Its settings are the `serve` section of `GenVecConfig` (`ServeConfig`); the CLI builds it from a config file, the
`GENVEC_SERVE_<FIELD>` environment variables and its flags (`GenVecConfig.from_layers`). The API key is no config
field, so that it is never written into a config file: `serve(api_key=...)`, or `GENVEC_API_KEY` for the CLI (white
space around it is dropped; an empty one is refused).

Needs the `serve` extra (`pip install 'genvec[serve]'`: fastapi, uvicorn, prometheus-client); tracing
(`otlp_endpoint`) the `otel` extra too (`pip install 'genvec[otel]'`).
"""

import contextlib
from pathlib import Path

from genvec.config import GenVecConfig, ServeConfig
from genvec.errors import InputError

API_KEY_VARIABLE = "GENVEC_API_KEY"


def serve(model: str | Path, config: ServeConfig | None = None, *, device: str = "auto", dtype: str | None = None,
          backbone: str | None = None, api_key: str | None = None) -> None:
    """Serve the checkpoint `model` until interrupted (SIGINT / SIGTERM finish the requests in flight first).

    The model loads while the server already answers /health; if it cannot load, the server stops and the loader's
    error is raised here (a server that could only answer 503 would look alive to its supervisor forever).

    Raises:
        InputError: the `serve` extra is missing, or an empty `api_key`. ConfigError: a bad setting. Whatever
            `load_model` raised (CheckpointError, ...) when the model could not be loaded.
    """
    config = GenVecConfig(serve=config or ServeConfig()).serve  # a ConfigError lists every problem of the section
    try:
        import uvicorn

        from genvec.serve.app import create_app
        from genvec.serve.connections import uvicorn_settings
    except ImportError as err:
        raise InputError(f"genvec serve needs the serve extra: pip install 'genvec[serve]' ({err}).") from err
    from genvec.loading import load_model

    name = config.model_name or (Path(model).name if Path(model).exists() else str(model))
    failures: list[Exception] = []

    def stop(err: Exception) -> None:  # called in the server's loop: it finishes what is in flight, then returns
        failures.append(err)
        server.should_exit = True

    app = create_app(lambda: load_model(model, backbone=backbone, device=device, dtype=dtype), config,
                     api_key=api_key, model_name=name, on_load_failure=stop)
    # uvicorn.Server, not uvicorn.run, to hold the server that `stop` ends (it exits with status 3 by itself when
    # the port cannot be bound, as uvicorn.run does).
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_config=None,
                                           access_log=False, timeout_graceful_shutdown=30,
                                           **uvicorn_settings(config)))  # deadlines for idle and slow clients
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C, re-raised by uvicorn once it has drained: a normal end
        server.run()
    if failures:
        raise failures[0]
