"""Each Kerberos failure produced for real against the lab KDC, and named by `explain()`.

The client side is fleetcheck's own provider (`fleetcheck.transports.kerberos`) stepping a
pyspnego initiator, the same path the transports take; nothing is simulated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from krb_helpers import PASSWORD, USER, fqdn

from fleetcheck.lab.kdc import FAKETIME_LIBS, LabRealm
from fleetcheck.transports.kerberos import KerberosOptions, KerberosProblem, client_context, explain


def _attempt(address: str, options: KerberosOptions) -> KerberosProblem:
    """Build the first token (AS and TGS exchanges happen here) and return the named cause."""
    with pytest.raises(Exception) as caught:
        client_context(address, options).step()
    problem = explain(caught.value, address, options, realm="FLEETCHECK.TEST")
    assert problem is not None, f"not recognised as a Kerberos failure: {caught.value!r}"
    return problem


@pytest.fixture
def web(krb_env: LabRealm) -> str:
    krb_env.add_host(fqdn("fail-web01")) if fqdn("fail-web01") not in krb_env.keytabs else None
    return fqdn("fail-web01")


def test_password_gets_a_ticket_in_memory(krb_env: LabRealm, web: str, tmp_path: Path) -> None:
    ctx = client_context(web, KerberosOptions(principal=f"{USER}@FLEETCHECK.TEST", password=PASSWORD))
    token = ctx.step()
    assert token and ctx.negotiated_protocol == "kerberos"
    assert not (tmp_path / "ccache").exists()


def test_kdc_unreachable(krb_env: LabRealm, web: str) -> None:
    options = KerberosOptions(principal=f"{USER}@FLEETCHECK.TEST", password=PASSWORD)
    with krb_env.kdc_stopped():
        problem = _attempt(web, options)
    assert problem.cause == "kdc_unreachable"
    assert "cannot reach a KDC for realm FLEETCHECK.TEST" in problem.message


def test_principal_unknown(krb_env: LabRealm, web: str) -> None:
    krb_env.add_user("leaver", "Leaver-Passw0rd!")
    krb_env.delete_principal("leaver")
    problem = _attempt(web, KerberosOptions(principal="leaver@FLEETCHECK.TEST", password="Leaver-Passw0rd!"))
    assert problem.cause == "principal_unknown"
    assert "leaver@FLEETCHECK.TEST does not exist" in problem.message


def test_wrong_password_is_named_and_says_not_retried(krb_env: LabRealm, web: str) -> None:
    problem = _attempt(web, KerberosOptions(principal=f"{USER}@FLEETCHECK.TEST", password="not-" + PASSWORD))
    assert problem.cause == "wrong_password"
    assert "not retried" in problem.message and PASSWORD not in problem.message


@pytest.mark.skipif(not any(Path(p).exists() for p in FAKETIME_LIBS), reason="libfaketime missing (Debian package faketime)")
def test_expired_ticket(krb_env: LabRealm, web: str, tmp_path: Path) -> None:
    """A one-hour ticket obtained yesterday (KDC and kinit both a day back): past the KDC's
    five-minute grace, so the ticket-granting exchange fails as expired."""
    with krb_env.kdc_clock_offset(-86400):
        cache = krb_env.kinit(USER, PASSWORD, tmp_path / "old.ccache", "-l", "1h", clock_offset=-86400)
    problem = _attempt(web, KerberosOptions(ccache=f"FILE:{cache}"))
    assert problem.cause == "ticket_expired"
    assert "run kinit again" in problem.message


def test_no_credentials(krb_env: LabRealm, web: str) -> None:
    problem = _attempt(web, KerberosOptions())  # KRB5CCNAME names an empty cache (krb_env)
    assert problem.cause == "no_credentials"
    assert "run kinit, or set password_env" in problem.message


def test_connecting_by_ip_address_names_the_missing_spn(krb_env: LabRealm, tmp_path: Path) -> None:
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    problem = _attempt("127.0.0.1", KerberosOptions())
    assert problem.cause == "spn_unknown"
    assert "no SPN WSMAN/127.0.0.1" in problem.message and "connecting by IP address" in problem.message


def test_host_without_spn(krb_env: LabRealm, tmp_path: Path) -> None:
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    problem = _attempt(fqdn("never-joined"), KerberosOptions())
    assert problem.cause == "spn_unknown"
    assert "setspn -S WSMAN/never-joined.fleetcheck.test" in problem.message


def test_http_service_override_reaches_the_http_spn(krb_env: LabRealm, web: str, tmp_path: Path) -> None:
    krb_env.kinit(USER, PASSWORD, tmp_path / "ccache")
    ctx = client_context("192.0.2.7", KerberosOptions(hostname_override=web, service="HTTP"))
    assert ctx.step()  # a ticket for HTTP/<fqdn> although the address is an IP


@pytest.mark.skipif(not any(Path(p).exists() for p in FAKETIME_LIBS), reason="libfaketime missing (Debian package faketime)")
def test_clock_skew(krb_env: LabRealm, web: str) -> None:
    options = KerberosOptions(principal=f"{USER}@FLEETCHECK.TEST", password=PASSWORD)
    with krb_env.kdc_clock_offset(2 * 3600):
        problem = _attempt(web, options)
    assert problem.cause == "clock_skew"
    assert "NTP" in problem.message


def test_ticket_cache_gets_one_tgt_per_run(krb_env: LabRealm, web: str) -> None:
    """A password costs one AS exchange per run: every host after the first reuses the TGT."""
    from fleetcheck.transports.kerberos import TicketCache

    tickets = TicketCache()
    options = KerberosOptions(principal=f"{USER}@FLEETCHECK.TEST", password=PASSWORD)
    first = tickets.resolve(options)
    assert first.password is None and (first.ccache or "").startswith("MEMORY:")
    assert tickets.resolve(options) == first
    log = krb_env.tmpdir / "kdc.log"
    as_requests = log.read_text().count("AS_REQ")
    for _ in range(3):
        assert client_context(web, tickets.resolve(options)).step()
    assert log.read_text().count("AS_REQ") == as_requests  # only TGS exchanges since
    assert PASSWORD not in repr(vars(tickets))  # keyed by a digest, the password is not kept


def test_a_rejected_password_is_asked_once_per_run(krb_env: LabRealm, web: str) -> None:
    """100 hosts sharing a wrong password make one failed logon at the KDC, not 100 (lockout)."""
    from fleetcheck.transports.kerberos import TicketCache, TicketUnavailable

    tickets = TicketCache()
    options = KerberosOptions(principal=f"{USER}@FLEETCHECK.TEST", password="wrong-" + PASSWORD)
    log = krb_env.tmpdir / "kdc.log"
    before = log.read_text().count("PREAUTH_FAILED")
    with pytest.raises(Exception) as first:
        tickets.resolve(options)
    for _ in range(5):
        with pytest.raises(TicketUnavailable) as again:
            tickets.resolve(options)
        problem = explain(again.value)
        assert problem is not None and problem.cause == "wrong_password"
    assert explain(first.value) is not None
    assert log.read_text().count("PREAUTH_FAILED") == before + 1


def test_an_unreachable_kdc_is_tried_again_by_the_next_host(krb_env: LabRealm, web: str) -> None:
    from fleetcheck.transports.kerberos import TicketCache

    tickets = TicketCache()
    options = KerberosOptions(principal=f"{USER}@FLEETCHECK.TEST", password=PASSWORD)
    with krb_env.kdc_stopped(), pytest.raises(Exception) as caught:
        tickets.resolve(options)
    problem = explain(caught.value)
    assert problem is not None and problem.cause == "kdc_unreachable"
    assert tickets.resolve(options).ccache  # the KDC is back: a ticket now
