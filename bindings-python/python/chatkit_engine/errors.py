"""Exceptions raised by :mod:`chatkit_engine`.

Every failure of the engine is a :class:`ChatKitError`. Its ``code`` is the
core's stable error code (the same string the JSON error body and the Node
binding carry) and ``http_status`` the status a server should answer with.
There is one subclass per code; codes added to the core later still map to
:class:`AuthError` (401/403 and auth-like codes) or to :class:`ChatKitError`.
"""

from __future__ import annotations

import json
from typing import ClassVar, Dict, Optional, Type

__all__ = [
    "ChatKitError",
    "InvalidRequestError",
    "NotFoundError",
    "AuthError",
    "UnauthorizedError",
    "ForbiddenError",
    "PayloadTooLargeError",
    "ThreadBusyError",
    "NotSupportedError",
    "CustomError",
    "TurnCancelledError",
    "ModelError",
    "EngineTimeoutError",
    "MaxTurnsExceededError",
    "TokenBudgetExceededError",
    "StorageError",
    "ConfigError",
    "InternalError",
    "error_class",
]


class ChatKitError(Exception):
    """Base class of every engine error.

    Attributes:
        code: the core's stable error code, e.g. ``"not_found"``.
        http_status: the HTTP status to answer with, e.g. ``404``.
        message: a description of the failure (may contain details meant
            for logs; send :attr:`body` to clients).
        body: the JSON error body ``{"error": {"code", "message"}}`` that is
            safe to send to a client.
    """

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500

    def __init__(
        self,
        message: str = "",
        *,
        code: Optional[str] = None,
        http_status: Optional[int] = None,
        body: Optional[bytes] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        if http_status is not None:
            self.http_status = http_status  # type: ignore[misc]
        if body is None:
            # Compact, as the core and the Node binding write it.
            body = json.dumps(
                {"error": {"code": self.code, "message": message}}, separators=(",", ":")
            ).encode()
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, http_status={self.http_status}, message={self.message!r})"


class InvalidRequestError(ChatKitError, ValueError):
    """The body is not a valid ChatKit request (400)."""

    code = "invalid_request"
    http_status = 400


class NotFoundError(ChatKitError, LookupError):
    """A thread, item, attachment or task does not exist for this user (404)."""

    code = "not_found"
    http_status = 404


class AuthError(ChatKitError):
    """The caller could not be authenticated or is not allowed (401/403)."""

    code = "unauthorized"
    http_status = 401


class UnauthorizedError(AuthError):
    """Missing, malformed or unverifiable credentials (401)."""

    code = "unauthorized"
    http_status = 401


class ForbiddenError(AuthError):
    """Authenticated, but not allowed (403)."""

    code = "forbidden"
    http_status = 403


class PayloadTooLargeError(ChatKitError):
    """The request exceeds a configured size limit (413)."""

    code = "payload_too_large"
    http_status = 413


class ThreadBusyError(ChatKitError):
    """Another turn is already running on this thread (409)."""

    code = "thread_busy"
    http_status = 409


class NotSupportedError(ChatKitError):
    """Valid, but this engine is not configured to serve it (501)."""

    code = "not_supported"
    http_status = 501


class CustomError(ChatKitError):
    """A failure meant to be shown to the end user as is (400)."""

    code = "custom"
    http_status = 400


class TurnCancelledError(ChatKitError):
    """The turn was cancelled (499)."""

    code = "cancelled"
    http_status = 499


class ModelError(ChatKitError):
    """The model provider failed (502)."""

    code = "model_error"
    http_status = 502


class EngineTimeoutError(ChatKitError, TimeoutError):
    """Something took longer than its configured limit (504)."""

    code = "timeout"
    http_status = 504


class MaxTurnsExceededError(ChatKitError):
    """The agent used up its turn budget without a final answer (500)."""

    code = "max_turns_exceeded"
    http_status = 500


class TokenBudgetExceededError(ChatKitError):
    """The user has spent their daily token budget (429)."""

    code = "token_budget_exceeded"
    http_status = 429


class StorageError(ChatKitError):
    """The database failed or could not be reached (503)."""

    code = "storage_error"
    http_status = 503


class ConfigError(ChatKitError, ValueError):
    """Invalid engine configuration (500): unknown keys, bad values."""

    code = "invalid_config"
    http_status = 500


class InternalError(ChatKitError):
    """A bug or an unexpected condition inside the engine (500)."""

    code = "internal"
    http_status = 500


_BY_CODE: Dict[str, Type[ChatKitError]] = {
    cls.code: cls
    for cls in (
        InvalidRequestError,
        NotFoundError,
        UnauthorizedError,
        ForbiddenError,
        PayloadTooLargeError,
        ThreadBusyError,
        NotSupportedError,
        CustomError,
        TurnCancelledError,
        ModelError,
        TokenBudgetExceededError,
        EngineTimeoutError,
        MaxTurnsExceededError,
        StorageError,
        ConfigError,
        InternalError,
    )
}

_AUTH_HINTS = ("auth", "token", "jwt", "jwk", "forbidden", "credential", "signature", "expired")


def error_class(code: str, http_status: int = 500) -> Type[ChatKitError]:
    """The exception class for a core error code.

    Known codes have their own class. An unknown code maps to
    :class:`AuthError` when its status is 401/403 or it names an auth
    concept, else to :class:`ChatKitError`.
    """
    known = _BY_CODE.get(code)
    if known is not None:
        return known
    if http_status in (401, 403) or any(hint in code for hint in _AUTH_HINTS):
        return AuthError
    return ChatKitError


def _from_core(code: str, http_status: int, message: str, body: bytes) -> ChatKitError:
    """Called by the native module to build the exception for a core error."""
    cls = error_class(code, http_status)
    return cls(message, code=code, http_status=http_status, body=body)
