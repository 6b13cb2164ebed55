"""The NTLM fall-back rule: a host asked for Negotiate or Kerberos that authenticated with NTLM.

In a domain, Negotiate means Kerberos; NTLM there usually means a missing SPN, a connection by
IP address, or a client without a ticket. Teams retiring NTLM want to see every such host, so a
playbook with `ntlm_fallback: warn` turns it into a warning on the host's row (never a failure:
the host was checked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleetcheck.results import CheckResult, CheckStatus

CHECK_ID = "auth.ntlm_fallback"


def ntlm_fallback(requested: str, mechanism: str | None, playbooks: Sequence[Any]) -> CheckResult | None:
    """A WARN result when a playbook asks for it and `requested` Negotiate/Kerberos became NTLM."""
    if mechanism != "ntlm" or requested not in ("negotiate", "kerberos"):
        return None
    if not any(getattr(p, "ntlm_fallback", "ignore") == "warn" for p in playbooks):
        return None
    return CheckResult(
        check_id=CHECK_ID,
        status=CheckStatus.WARN,
        message="authenticated with NTLM, not Kerberos - check the host's SPN (setspn -L), connect by its name, and the ticket (klist)",
        observed="ntlm",
        expected="kerberos",
        remediation="register WSMAN/<fqdn> and HTTP/<fqdn> for the computer account, or set negotiate_hostname_override",
        severity="low",
        tags=["auth"],
    )
