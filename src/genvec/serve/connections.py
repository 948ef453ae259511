"""How `genvec serve`'s uvicorn treats connections: a deadline for each request's headers, the keep-alive time, and
the answer to bytes that are not HTTP at all.

uvicorn closes a kept-alive connection that stays silent after an answer (`timeout_keep_alive`), but it has no
deadline for a new connection that sends nothing, nor for a header block that never ends: each such connection would
stay open for as long as its client likes. `uvicorn_settings` gives uvicorn a protocol class (its own, with that
deadline added) that closes a connection whose next request's headers have not all arrived `header_timeout_seconds`
after it was opened or its last answer was sent. The body has its own deadline, in the app (`app.read_body`: 408).
A request uvicorn cannot parse (a bad request line, a broken Content-Length or chunk size, an HTTP/2 preface) never
reaches the app; the same class answers it with a 400 in the OpenAI error shape (code `invalid_http`) instead of
uvicorn's plain text, and closes the connection.

What it does not do: cap the number of connections (uvicorn's `limit_concurrency` counts idle kept-alive ones too,
and answers in plain text); an exposed server belongs behind a reverse proxy, which bounds them.

Needs uvicorn (the `serve` extra); imported by `genvec.serve.serve` and the server tests only.
"""

import asyncio
import json

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from genvec.config.sections import ServeConfig
from genvec.serve.protocol import ApiError

KEEP_ALIVE_SECONDS = 5  # uvicorn's default: a kept-alive connection silent this long after an answer is closed


def uvicorn_settings(config: ServeConfig) -> dict:
    """The keyword arguments of `uvicorn.Config` that bound how long connections may stay idle or unfinished."""
    return {"http": _protocol_with_header_deadline(config.header_timeout_seconds),
            "timeout_keep_alive": KEEP_ALIVE_SECONDS}


def _protocol_with_header_deadline(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, or h11 without it), closing a connection whose next request's headers are
    not complete `seconds` after it opened or after its last answer, and answering unparsable bytes in the OpenAI
    error shape. Both implementations set `cycle` to a new request cycle when a request's headers are complete, call
    `on_response_complete` after each answer, and `send_400_response` for bytes their parser refuses."""

    class HeaderDeadline(AutoHTTPProtocol):
        def send_400_response(self, msg: str) -> None:
            self.transport.write(_unparsable_request_answer(msg))
            self.transport.close()

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


def _unparsable_request_answer(reason: str) -> bytes:
    """The whole HTTP/1.1 400 answer to a request that could not be parsed, in the OpenAI error shape."""
    error = ApiError(400, f"the request is not valid HTTP/1.1 ({reason.rstrip('.')}); check the request line, the "
                     "headers and the body's framing (Content-Length or chunked).", code="invalid_http")
    body = json.dumps(error.body()).encode()
    head = (f"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    return head.encode("ascii") + body
