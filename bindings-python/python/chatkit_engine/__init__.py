"""chatkit_engine: a ChatKit backend as an embeddable engine.

Embed it in any asyncio host (FastAPI shown)::

    from chatkit_engine import ChatEngine, ChatKitError

    engine = ChatEngine(database_url="sqlite://chatkit.db", jwt_secret="...")

    @app.post("/chatkit")
    async def chatkit(request: Request):
        try:
            ctx = await engine.authenticate(request.headers.get("authorization"))
            result = await engine.process(await request.body(), ctx)
        except ChatKitError as err:
            return Response(err.body, status_code=err.http_status, media_type="application/json")
        if result.streaming:
            return StreamingResponse(result, media_type="text/event-stream")
        return Response(result.json, media_type="application/json")

Every engine operation runs on a Rust (tokio) runtime and is awaited as an
asyncio future, so nothing blocks the event loop or holds the GIL.
"""

from __future__ import annotations

import inspect
import json
import warnings
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
    overload,
)

from . import _native
from ._native import ProcessResult, RequestContext
from .errors import (
    AuthError,
    ChatKitError,
    ConfigError,
    CustomError,
    EngineTimeoutError,
    ForbiddenError,
    InternalError,
    InvalidRequestError,
    MaxTurnsExceededError,
    TokenBudgetExceededError,
    ModelError,
    NotFoundError,
    NotSupportedError,
    PayloadTooLargeError,
    StorageError,
    ThreadBusyError,
    TurnCancelledError,
    UnauthorizedError,
    error_class,
)

__version__: str = _native.__version__

__all__ = [
    "ActionContext",
    "ActionHandler",
    "ActionResult",
    "ChatEngine",
    "ProcessResult",
    "RequestContext",
    "ToolContext",
    "ToolFunction",
    "ToolResult",
    "AuthError",
    "ChatKitError",
    "ConfigError",
    "CustomError",
    "EngineTimeoutError",
    "ForbiddenError",
    "InternalError",
    "InvalidRequestError",
    "MaxTurnsExceededError",
    "TokenBudgetExceededError",
    "ModelError",
    "NotFoundError",
    "NotSupportedError",
    "PayloadTooLargeError",
    "StorageError",
    "ThreadBusyError",
    "TurnCancelledError",
    "UnauthorizedError",
    "error_class",
]

ToolContext = Dict[str, Optional[str]]
"""What a tool receives first: ``user_id``, ``email``, ``name``, ``locale``
(the verified caller of the turn) and ``call_id`` (the model's call id)."""

ToolFunction = Callable[[ToolContext, Dict[str, Any]], Awaitable[Any]]
"""``async def tool(ctx, args) -> str | dict | list | None``."""

F = TypeVar("F", bound=ToolFunction)

_EMPTY_SCHEMA: Mapping[str, Any] = {"type": "object", "properties": {}}


class ToolResult:
    """What a tool returns when it wants more than a value for the model.

    ``output`` is what the model sees (a ``str`` as is, anything else as
    JSON). ``widget`` is a ChatKit widget root (a ``Card``, ``ListView`` or
    ``Basic`` dict) shown to the user after the tool activity; ``effects``
    are ``{"name": ..., "data": {...}}`` dicts sent as ``client_effect``
    events (ChatKit React's ``onEffect``). A widget that is not a root fails
    the call with a message saying so.
    """

    __slots__ = ("output", "widget", "effects")

    def __init__(
        self,
        output: Any,
        widget: Optional[Mapping[str, Any]] = None,
        effects: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.output = output
        self.widget = widget
        self.effects = effects

    def _chatkit_envelope(self) -> Dict[str, Any]:
        """The envelope the engine reads (shared with the Node binding)."""
        envelope: Dict[str, Any] = {"ok": True}
        if isinstance(self.output, str):
            envelope["text"] = self.output
        elif self.output is None:
            envelope["text"] = ""
        else:
            envelope["json"] = self.output
        if self.widget is not None:
            envelope["widget"] = dict(self.widget)
        envelope["effects"] = [dict(effect) for effect in self.effects]
        return envelope


ActionContext = Dict[str, Optional[str]]
"""What an action handler receives first: ``user_id``, ``email``, ``name``,
``locale`` (the verified caller who clicked)."""

ActionHandler = Callable[[ActionContext, Dict[str, Any], Dict[str, Any]], Awaitable[Any]]
"""``async def handler(ctx, action, widget) -> ActionResult | None``."""

A = TypeVar("A", bound=ActionHandler)


class ActionResult:
    """What a widget action handler changes on the page.

    ``widget`` (a ``Card``, ``ListView`` or ``Basic`` dict) replaces the
    widget that sent the action, in place and stored (a reload shows it);
    ``None`` leaves it as it was. ``effects`` are ``{"name": ..., "data":
    {...}}`` dicts sent as ``client_effect`` events.
    """

    __slots__ = ("widget", "effects")

    def __init__(
        self,
        widget: Optional[Mapping[str, Any]] = None,
        effects: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.widget = widget
        self.effects = effects

    def _chatkit_envelope(self) -> Dict[str, Any]:
        """The envelope the engine reads (shared with the Node binding)."""
        envelope: Dict[str, Any] = {"ok": True}
        if self.widget is not None:
            envelope["widget"] = dict(self.widget)
        envelope["effects"] = [dict(effect) for effect in self.effects]
        return envelope


def _action_envelope(func: ActionHandler) -> ActionHandler:
    """Wraps a user's handler so the engine gets the shared envelope: an
    ``ActionResult`` or ``None`` as is, a :class:`ChatKitError` as a refusal
    keeping its code and message (shown to the user)."""

    async def handler(ctx: ActionContext, action: Dict[str, Any], widget: Dict[str, Any]) -> Any:
        try:
            result = await func(ctx, action, widget)
        except ChatKitError as err:
            return {"ok": False, "code": err.code, "error": err.message or str(err)}
        if result is None:
            return None
        if isinstance(result, ActionResult):
            return result._chatkit_envelope()
        raise TypeError(
            f"action handler {func!r} returned {type(result).__name__}; "
            "return an ActionResult or None"
        )

    return handler


def _body_bytes(body: Union[bytes, bytearray, memoryview, str]) -> bytes:
    """A request body as bytes (text as UTF-8)."""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes):
        return body
    return bytes(body)


class ChatEngine:
    """The ChatKit backend: one per process, shared by every request.

    ``ChatEngine(config)`` takes a dict of the core ``EngineConfig`` fields
    (``database_url``, ``jwt_secret``, ``openai_api_key``, ``max_turns``,
    ...), keyword arguments with the same names, or both (keywords win).
    Unknown keys and bad values raise :class:`ConfigError` right here.

    Construction is cheap and does no I/O: the database and the token
    verifier open on :meth:`start` or on the first request. This also makes
    it safe to create the engine before a fork (gunicorn ``--preload``): each
    process opens its own connections. An engine that was already used in
    the parent rebuilds its runtime and connections in the child.
    """

    __slots__ = ("_native",)

    def __init__(self, config: Optional[Mapping[str, Any]] = None, /, **options: Any) -> None:
        merged: Dict[str, Any] = dict(config or {})
        merged.update(options)
        try:
            text = json.dumps(merged)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"configuration is not JSON-serialisable: {err}") from None
        self._native = _native.Engine(text)

    @classmethod
    def from_env(cls, **overrides: Any) -> "ChatEngine":
        """The configuration the environment gives (``DATABASE_URL``,
        ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``CHAT_MODEL``, ``JWKS_URL``,
        ``JWKS``, ``JWT_SECRET``, ``JWT_ISSUER``, ``JWT_AUDIENCE``,
        ``MAX_TURNS``, ...), with ``overrides`` on top."""
        config: Dict[str, Any] = json.loads(_native.Engine.env_config_json())
        config.update(overrides)
        return cls(config)

    def add_tool(
        self,
        func: ToolFunction,
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        requires_approval: bool = False,
    ) -> None:
        """Registers ``async def func(ctx, args)`` as a tool of both agents.

        ``name`` defaults to the function's name, ``description`` to its
        docstring, ``parameters`` (a JSON schema of ``args``) to an empty
        object. The tool runs on the event loop of the request that started
        the turn, with that request's ``contextvars``; ``ctx`` carries the
        verified caller (never trust a user id in ``args``). Return a
        ``str`` (the model sees it as is), or a ``dict``/``list`` (sent as
        JSON), or a :class:`ToolResult` to also show a widget and send
        client effects; an exception is reported to the model as an error.
        With ``requires_approval`` the run pauses on a Confirm / Cancel card
        and the tool runs only after Confirm (Cancel tells the model the
        user declined). A tool named like a built-in task tool replaces it.
        Register tools before the first request.
        """
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"{func!r} is not an async function (define it with `async def`)")
        tool_name = name or getattr(func, "__name__", None)
        if not tool_name:
            raise ValueError("the tool needs a name")
        text = description if description is not None else inspect.getdoc(func) or ""
        schema = dict(parameters) if parameters is not None else dict(_EMPTY_SCHEMA)
        self._native.add_tool(func, tool_name, text, json.dumps(schema), bool(requires_approval))

    @overload
    def tool(self, func: F, /) -> F: ...

    @overload
    def tool(
        self,
        func: None = None,
        /,
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        requires_approval: bool = False,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        func: Optional[F] = None,
        /,
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        requires_approval: bool = False,
    ) -> Union[F, Callable[[F], F]]:
        """Decorator form of :meth:`add_tool`: ``@engine.tool`` or
        ``@engine.tool(name=..., parameters={...})``."""

        def register(f: F) -> F:
            self.add_tool(
                f,
                name=name,
                description=description,
                parameters=parameters,
                requires_approval=requires_approval,
            )
            return f

        if func is not None:
            return register(func)
        return register

    def add_action(self, action_type: str, func: ActionHandler) -> None:
        """Registers ``async def func(ctx, action, widget)`` as the handler of
        widget actions of type ``action_type`` (a button's ``onClickAction``,
        a form's ``onSubmitAction``...), answered without the model.

        Before ``func`` runs, the engine checks that the action comes from a
        widget item of the caller's own thread that offers exactly this
        action: a forged type or payload is refused as
        :class:`InvalidRequestError`. A submitted form adds only the values
        of its named controls to the payload. ``ctx`` is the verified caller,
        ``action`` is ``{"type", "payload"}``, ``widget`` the sender's widget
        root. Return an :class:`ActionResult` (the replacing widget, client
        effects) or ``None``; raise a :class:`ChatKitError` such as
        ``InvalidRequestError("Title cannot be empty")`` to refuse with that
        message. Any other exception is an internal error (logged, not
        shown). A handler for a built-in type (``tasks.toggle``...) replaces
        it. Register handlers before the first request.
        """
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"{func!r} is not an async function (define it with `async def`)")
        if not action_type:
            raise ValueError("the action handler needs an action type")
        self._native.add_action(action_type, _action_envelope(func))

    def action(self, action_type: str) -> Callable[[A], A]:
        """Decorator form of :meth:`add_action`: ``@engine.action("cart.add")``."""

        def register(f: A) -> A:
            self.add_action(action_type, f)
            return f

        return register

    def start(self) -> Awaitable[None]:
        """Opens the database (running migrations) and the token verifier
        now instead of on the first request."""
        return self._native.start()

    @property
    def model_name(self) -> Optional[str]:
        """The model answering (``scripted-offline`` without an API key),
        once started; ``None`` before."""
        return self._native.model_name

    def authenticate(self, authorization: Optional[str]) -> Awaitable[RequestContext]:
        """Verifies an ``Authorization`` header value (``Bearer <JWT>``).

        Raises :class:`UnauthorizedError` (or another :class:`AuthError`)
        when it is missing or does not verify.
        """
        return self._native.authenticate(authorization)

    def run_task_tool(
        self, name: str, arguments: Mapping[str, Any], ctx: RequestContext
    ) -> Awaitable[Any]:
        """Runs a built-in task tool (``create_task``, ``list_tasks``,
        ``get_task``, ``update_task``, ``delete_task``, ``toggle_complete``,
        ``get_stats``) for ``ctx`` on the engine's ``tasks`` table, exactly as
        the agents do, and returns its envelope: ``{"success": True, "data":
        ...}`` or ``{"success": False, "error": "..."}``. This is how a
        host's REST routes share data and validation with the chat.
        An unknown name raises :class:`NotFoundError`.
        """
        return self._native.run_task_tool(name, json.dumps(dict(arguments)), ctx)

    def run_tool(
        self, name: str, arguments: Mapping[str, Any], ctx: RequestContext
    ) -> Awaitable[Any]:
        """Deprecated alias of :meth:`run_task_tool` (its name in Rust and
        Node); it warns with :class:`DeprecationWarning` and goes away in the
        next release."""
        warnings.warn(
            "ChatEngine.run_tool() is deprecated; use ChatEngine.run_task_tool()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.run_task_tool(name, arguments, ctx)

    def process(
        self, body: Union[bytes, bytearray, memoryview, str], ctx: RequestContext
    ) -> Awaitable[ProcessResult]:
        """Handles one ChatKit request body for the caller ``ctx``.

        Failures before any byte is streamed raise a :class:`ChatKitError`
        (send ``err.body`` with ``err.http_status``). A streaming result
        yields SSE frames (``bytes``: each step every frame ready at that
        moment, whole frames in order) with ``async for``; failures after it
        began arrive as an ``error`` event. Closing it (:meth:`ProcessResult.aclose`,
        or cancelling a pending ``__anext__``, as a server does when the
        client disconnects) cancels the turn; the partial answer is kept.
        """
        return self._native.process(_body_bytes(body), ctx)

    def handle(
        self,
        body: Union[bytes, bytearray, memoryview, str],
        authorization: Optional[str] = None,
        ctx: Optional[RequestContext] = None,
    ) -> Awaitable[ProcessResult]:
        """:meth:`authenticate` and :meth:`process` in one await: the caller
        is ``ctx`` when given, else the verified ``authorization`` header
        value. Raises what either raises. One crossing into the engine
        instead of two, for hosts that write their own route.
        """
        return self._native.handle(_body_bytes(body), authorization, ctx)

    @property
    def max_body_bytes(self) -> int:
        """The largest request body the engine accepts; a host stops reading
        a body past it."""
        return self._native.max_body_bytes

    def metrics(self) -> str:
        """This process's metrics in the Prometheus text format (turns,
        model and tool calls, tokens, streams, store and pool, auth
        failures), for a host's ``/metrics`` route. Raises
        :class:`ConfigError` when ``metrics`` is off in the config."""
        return self._native.metrics()

    def token_usage(
        self, ctx: RequestContext, thread_id: Optional[str] = None
    ) -> Awaitable[Dict[str, Any]]:
        """The caller's token usage: ``{"day", "today", "total", "thread",
        "daily_budget", "remaining_today"}``; each total has
        ``input_tokens``, ``output_tokens``, ``turns``, ``model_calls`` and
        ``estimated`` (true when a provider reported no usage and the
        engine counted). ``thread`` is ``None`` unless ``thread_id`` is
        given; another user's thread raises :class:`NotFoundError`."""
        return self._native.token_usage(ctx, thread_id)

    async def __aenter__(self) -> "ChatEngine":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"ChatEngine(model_name={self.model_name!r})"
