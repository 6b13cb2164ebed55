"""pypsrp's requests session is built before its first request, and nothing is sent doing so.

The cap on response size (httpcap) can only bound the first response (the shell Create, or
the authentication before it) if it is mounted on the session before that request.
"""

from __future__ import annotations

import socket

import pytest
from pypsrp.wsman import WSMan
from requests import Session

from fleetcheck.transports.psrp import build_session_unsent


@pytest.mark.parametrize("ssl", [False, True])
def test_the_session_exists_before_anything_is_sent(ssl: bool) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        wsman = WSMan(
            server="127.0.0.1", port=port, ssl=ssl, auth="ntlm",
            username="lab", password="Sentinel-Pw1", cert_validation=False, no_proxy=True,
        )
        endpoint = wsman.transport.endpoint
        assert wsman.transport.session is None
        session = build_session_unsent(wsman.transport)
        assert isinstance(session, Session)
        assert wsman.transport.session is session
        assert wsman.transport.endpoint == endpoint
        with pytest.raises(TimeoutError):
            listener.accept()  # no connection was opened
