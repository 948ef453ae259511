"""How `genvec serve`'s uvicorn treats connections: a deadline for each request's headers, and the keep-alive time.

uvicorn closes a kept-alive connection that stays silent after an answer (`timeout_keep_alive`), but it has no
deadline for a new connection that sends nothing, nor for a header block that never ends: each such connection would
stay open for as long as its client likes. `uvicorn_settings` gives uvicorn a protocol class (its own, with that
deadline added) that closes a connection whose next request's headers have not all arrived `header_timeout_seconds`
after it was opened or its last answer was sent. The body has its own deadline, in the app (`app.read_body`: 408).

What it does not do: cap the number of connections (uvicorn's `limit_concurrency` counts idle kept-alive ones too,
and answers in plain text); an exposed server belongs behind a reverse proxy, which bounds them.

Needs uvicorn (the `serve` extra); imported by `genvec.serve.serve` and the server tests only.
"""

import asyncio

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from genvec.config.sections import ServeConfig

KEEP_ALIVE_SECONDS = 5  # uvicorn's default: a kept-alive connection silent this long after an answer is closed


def uvicorn_settings(config: ServeConfig) -> dict:
    """The keyword arguments of `uvicorn.Config` that bound how long connections may stay idle or unfinished."""
    return {"http": _protocol_with_header_deadline(config.header_timeout_seconds),
            "timeout_keep_alive": KEEP_ALIVE_SECONDS}


def _protocol_with_header_deadline(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, or h11 without it), closing a connection whose next request's headers are
    not complete `seconds` after it opened or after its last answer. Both implementations set `cycle` to a new
    request cycle when a request's headers are complete, and call `on_response_complete` after each answer."""

    class HeaderDeadline(AutoHTTPProtocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_header_deadline()

        def _arm_header_deadline(self) -> None:
            answered = self.cycle  # None on a new connection

            def expire() -> None:
                # No request's headers completed since (the cycle is unchanged), and none is being answered.
                idle = answered is None or answered.response_complete
                if self.cycle is answered and idle and not self.transport.is_closing():
                    self.transport.close()

            self.loop.call_later(seconds, expire)

    return HeaderDeadline
