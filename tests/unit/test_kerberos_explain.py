"""`explain()` names a Kerberos failure by GSSAPI's minor status, never by the generic major one."""

from __future__ import annotations

import pytest

from fleetcheck.transports.kerberos import KerberosOptions, explain

gssapi_misc = pytest.importorskip("gssapi.raw.misc", reason="python-gssapi not installed (fleetcheck[kerberos])")
NO_CRED = 458752  # GSS_S_NO_CRED: "No credentials were supplied, ..." whatever the real cause


def _gss(minor: int) -> BaseException:
    return gssapi_misc.GSSError(NO_CRED, minor % 2**32)


def test_minor_status_decides_not_the_major_one() -> None:
    assert explain(_gss(-1765328360)).cause == "wrong_password"  # type: ignore[union-attr]
    assert explain(_gss(-1765328230), realm="CORP.EXAMPLE").cause == "kdc_unreachable"  # type: ignore[union-attr]


class _MechError(Exception):
    """A GSSError as raised inside a security context: its text carries the mechanism's words."""

    min_code = -1765328351 % 2**32  # KRB_AP_ERR_TKT_NYV, not in fleetcheck's table


def test_an_unlisted_kerberos_error_is_reported_in_its_own_words() -> None:
    problem = explain(_MechError(
        "Major (458752): No credentials were supplied, or the credentials were unavailable or inaccessible, "
        "Minor (2529638945): Ticket not yet valid"
    ))
    assert problem is not None and problem.cause == "other"
    assert "ticket not yet valid" in problem.message and "no credentials" not in problem.message.lower()


def test_text_only_errors_from_pykerberos() -> None:
    exc = RuntimeError("authGSSClientStep() failed: (('Unspecified GSS failure.', 851968), ('Server not found in Kerberos database', -1765328377))")
    problem = explain(exc, "10.0.0.5", KerberosOptions(service="HTTP"))
    assert problem is not None and problem.cause == "spn_unknown"
    assert "HTTP/10.0.0.5" in problem.message and "connecting by IP address" in problem.message


def test_not_kerberos() -> None:
    assert explain(ConnectionRefusedError(111, "Connection refused")) is None
