"""Bounded HTTP responses for the requests-based clients (pypsrp, pywinrm).

requests reads a whole body into memory before pypsrp or pywinrm see it, whatever its size
or encoding: an endless chunked body, a 2 GB Content-Length or a gzip bomb can take the
scanner down. `cap_responses` mounts `CappedAdapter` around each adapter of a session (the
public `Session.mount`): it asks for `Accept-Encoding: identity`, refuses any compressed
body (WinRM never compresses), refuses a declared length over the cap, and bounds the
response's `stream` (what requests reads the body with) by the cap and the deadline. Auth handlers (NTLM,
Negotiate) resend through `response.connection`, which is the capped adapter too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from requests import PreparedRequest, Response, Session
from requests.adapters import BaseAdapter

from fleetcheck.transports.base import Budget
from fleetcheck.transports.errors import ResponseRefused, RunCancelled, auth_rejected
from fleetcheck.transports.target import Target

#: Largest WSMan response body read (pypsrp/pywinrm ask for envelopes of 150-500 KiB).
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_READ_SIZE = 64 * 1024


def capped_stream(raw: Any, budget: Budget, limit: int) -> Callable[..., Iterator[bytes]]:
    """`raw.stream` bounded: at most `limit` bytes, never decoded, the deadline checked per read.

    Installed on the urllib3 response itself (not a wrapper), so libraries that inspect the
    response (requests_ntlm reads the TLS certificate for channel binding) still see urllib3's.
    """
    original = raw.stream

    def stream(amt: int | None = _READ_SIZE, decode_content: bool | None = None) -> Iterator[bytes]:
        total = 0
        for chunk in original(min(amt or _READ_SIZE, _READ_SIZE), decode_content=False):
            total += len(chunk)
            if total > limit:
                raw.close()
                raise ResponseRefused(f"body larger than {limit // (1024 * 1024)} MiB")
            budget.check_progress()
            yield chunk

    return stream


class CappedAdapter(BaseAdapter):
    """Wraps a session's adapter: identity encoding only, bounded body, deadline per read."""

    def __init__(self, inner: BaseAdapter, budget: Budget, limit: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__()
        self.inner = inner
        self.budget = budget
        self.limit = limit

    @property
    def poolmanager(self) -> Any:
        return getattr(self.inner, "poolmanager", None)

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> Response:
        request.headers["Accept-Encoding"] = "identity"
        response = self.inner.send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        response.connection = self  # type: ignore[assignment]  # requests types it as HTTPAdapter
        self.budget.note_status(response.status_code)
        refusal = _refusal(response, self.limit)
        if refusal is not None:
            response.close()
            raise ResponseRefused(refusal)
        response.raw.stream = capped_stream(response.raw, self.budget, self.limit)
        return response

    def close(self) -> None:
        self.inner.close()


def _refusal(response: Response, limit: int) -> str | None:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        return f"compressed body ({encoding[:40]}) although identity was asked for"
    length = response.headers.get("Content-Length", "").strip()
    if length and (not length.isdigit() or len(length) > 18):
        return f"unreadable Content-Length {length[:40]!r}"
    if length and int(length) > limit:
        return f"declared body of {int(length)} bytes, over the {limit // (1024 * 1024)} MiB cap"
    return None


def cap_responses(session: Session, budget: Budget, limit: int = MAX_RESPONSE_BYTES) -> None:
    """Mount a `CappedAdapter` around every adapter of `session` (idempotent)."""
    for prefix, adapter in list(session.adapters.items()):
        if not isinstance(adapter, CappedAdapter):
            session.mount(prefix, CappedAdapter(adapter, budget, limit))


#: What a client raises after a 401 in the middle of a session (its re-authentication failing).
_AUTH_FALLOUT = frozenset({"WinRMTransportError", "AuthenticationError", "InvalidCredentialsError", "WinRMError"})


def auth_fallout(exc: BaseException) -> bool:
    """True when `exc` is an HTTP or authentication failure (not a timeout or a reset).

    A 401 also opens every new NTLM connection, so a 401 seen earlier explains the failure
    only when the failure itself is of that kind.
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if type(seen).__name__ in _AUTH_FALLOUT or type(seen).__module__.split(".")[0] == "spnego":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def first_failure(exc: BaseException, budget: Budget, target: Target) -> BaseException:
    """What ended a requests-based attempt (pypsrp, pywinrm), as the admin should read it."""
    if budget.cancelled:
        return RunCancelled("run interrupted")
    if budget.expired:
        return budget.overrun()
    if budget.rejected_mid_session and auth_fallout(exc):  # re-authenticated, then failed (often HTTP 400)
        return auth_rejected(target.auth, "credentials rejected in the middle of the session (HTTP 401)")
    return exc
