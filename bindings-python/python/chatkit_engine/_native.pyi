"""Type stubs of the extension module (hand-written; the public API is
``chatkit_engine``)."""

from typing import Any, AsyncIterator, Awaitable, Dict, Optional, final

from typing_extensions import Self

__all__ = ["Engine", "ProcessResult", "RequestContext", "__version__"]

__version__: str

@final
class RequestContext:
    """The caller's identity: what ``authenticate()`` returns and
    ``process()`` takes."""

    @property
    def user_id(self) -> str: ...
    @property
    def email(self) -> Optional[str]: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def locale(self) -> Optional[str]: ...
    def __new__(
        cls,
        user_id: str,
        *,
        email: Optional[str] = None,
        name: Optional[str] = None,
        locale: Optional[str] = None,
    ) -> Self: ...
    def __eq__(self, other: object, /) -> bool: ...

@final
class ProcessResult:
    """JSON bytes, or an async iterator of SSE frames (``bytes``).

    Each step of a stream yields every frame that was ready at that moment,
    concatenated (one or more whole frames, in order): frames produced
    together cross into Python in one await, and a step never waits for a
    frame that is not there yet (a slow model's tokens come one by one).
    Iterating a JSON result yields its document once, so
    ``StreamingResponse(result, media_type=result.media_type)`` fits both.
    """

    @property
    def streaming(self) -> bool: ...
    @property
    def json(self) -> Optional[bytes]: ...
    @property
    def media_type(self) -> str: ...
    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def __anext__(self) -> Awaitable[bytes]: ...
    def aclose(self) -> Awaitable[None]:
        """Stops iterating and cancels the turn (the partial answer is kept)."""
        ...

@final
class Engine:
    def __new__(cls, config_json: str) -> Self: ...
    @staticmethod
    def env_config_json() -> str: ...
    def add_tool(
        self,
        func: Any,
        name: str,
        description: str,
        parameters_json: str,
        requires_approval: bool = False,
    ) -> None: ...
    def add_action(self, kind: str, func: Any) -> None: ...
    def start(self) -> Awaitable[None]: ...
    @property
    def model_name(self) -> Optional[str]: ...
    def authenticate(self, authorization: Optional[str]) -> Awaitable[RequestContext]: ...
    def run_task_tool(self, name: str, arguments_json: str, ctx: RequestContext) -> Awaitable[Any]: ...
    def process(self, body: bytes, ctx: RequestContext) -> Awaitable[ProcessResult]: ...
    def handle(
        self, body: bytes, authorization: Optional[str], ctx: Optional[RequestContext] = None
    ) -> Awaitable[ProcessResult]: ...
    @property
    def max_body_bytes(self) -> int: ...
    def metrics(self) -> str: ...
    def token_usage(
        self, ctx: RequestContext, thread_id: Optional[str] = None
    ) -> Awaitable[Dict[str, Any]]: ...
