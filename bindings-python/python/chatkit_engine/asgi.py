"""The ChatKit route as a plain ASGI endpoint, for FastAPI, Starlette or any
ASGI server, without a framework's request and response objects around it.

    from starlette.routing import Route
    from chatkit_engine import ChatEngine
    from chatkit_engine.asgi import ChatKitEndpoint

    engine = ChatEngine.from_env()
    app = FastAPI()
    app.router.routes.append(Route("/api/chatkit", ChatKitEndpoint(engine), methods=["POST"]))

(Starlette's ``add_route`` works too, but its type hints only admit request
handlers; a ``Route`` takes any ASGI app.)

It answers what a hand-written route around :meth:`ChatEngine.handle`
answers, for less CPU per turn (no request object, no dependency solving, no
task group per streamed response; see docs/performance.md):

=====================================  =========================================
request                                answer
=====================================  =========================================
a method other than ``POST``           405, ``allow: POST``
``Content-Length`` over the limit,     413 ``payload_too_large`` (the body is not
or more body than the limit            read past ``engine.max_body_bytes``); 401
                                       when not signed in either, as ``serve``
two ``Authorization`` headers          400 ``invalid_request``, as ``serve``
not signed in, bad body, ...           the :class:`ChatKitError`'s status and
                                       JSON ``body``
a JSON request                         200 ``application/json``
a streamed request                     200 ``text/event-stream``: each ready batch
                                       of frames as one body message
the client goes away mid-stream        the turn is cancelled (its partial answer
                                       is kept)
=====================================  =========================================

``context``: a function of the ASGI ``scope`` (sync or async) returning the
:class:`RequestContext`, for hosts that authenticate requests themselves (a
session cookie); without it the ``Authorization: Bearer <JWT>`` header is
verified by the engine.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable, MutableMapping, Optional, Union

from ._native import ProcessResult, RequestContext
from .errors import ChatKitError, InvalidRequestError, PayloadTooLargeError

if TYPE_CHECKING:
    from . import ChatEngine

__all__ = ["ChatKitEndpoint"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ContextFunction = Callable[[Scope], Union[RequestContext, Awaitable[RequestContext]]]

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class ChatKitEndpoint:
    """An ASGI app answering ChatKit requests with ``engine`` (see the module
    docs for what it answers)."""

    __slots__ = ("engine", "context", "_max_body_bytes")

    def __init__(self, engine: "ChatEngine", *, context: Optional[ContextFunction] = None) -> None:
        self.engine = engine
        self.context = context
        # Fixed by the engine's configuration: read once, not per request.
        self._max_body_bytes = engine.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"ChatKitEndpoint serves HTTP, not {scope['type']!r}")
        if scope["method"] != "POST":
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"POST")]})
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            ctx: Optional[RequestContext] = None
            if self.context is not None:
                given = self.context(scope)
                ctx = given if isinstance(given, RequestContext) else await given
            credentials = [value for key, value in scope["headers"] if key == b"authorization"]
            if len(credentials) > 1:
                # As serve: which of two credentials counts is not for us to guess.
                raise InvalidRequestError("invalid request: send exactly one Authorization header")
            authorization = credentials[0].decode("latin-1") if credentials else None
            try:
                body = await _read_body(scope, receive, self._max_body_bytes)
            except PayloadTooLargeError:
                # As serve answers: unsigned is unauthorized whatever its size.
                if ctx is None:
                    await self.engine.authenticate(authorization)
                raise
            result = await self.engine.handle(body, authorization, ctx)
        except _ClientGone:
            return
        except ChatKitError as err:
            headers = list(_JSON_HEADERS)
            if isinstance(err, PayloadTooLargeError):
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": err.http_status, "headers": headers})
            await send({"type": "http.response.body", "body": err.body})
            return
        if not result.streaming:
            await send({"type": "http.response.start", "status": 200, "headers": _JSON_HEADERS})
            await send({"type": "http.response.body", "body": result.json or b""})
            return
        await _stream(result, receive, send)


async def _stream(result: ProcessResult, receive: Receive, send: Send) -> None:
    """Sends the frames as they come; a disconnect cancels the turn."""
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

    async def cancel_on_disconnect() -> None:
        # After the body, receive() returns only when the client is gone.
        while (await receive())["type"] != "http.disconnect":
            pass
        await result.aclose()

    watcher = asyncio.ensure_future(cancel_on_disconnect())
    try:
        async for frames in result:
            await send({"type": "http.response.body", "body": frames, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except BaseException:
        # A failed send or a cancelled task: stop the turn now rather than
        # when the result is collected (the call cancels it; the returned
        # future needs no await).
        result.aclose()
        raise
    finally:
        watcher.cancel()


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"the request body exceeds the limit of {limit} bytes")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"the request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _header(scope: Scope, name: bytes) -> Optional[str]:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
