"""The native PSRP client: psrpcore's client state machines driven over WSMan, over asyncio.

- `envelope`: WSMan SOAP requests and replies, faults and message encryption (sans-IO).
- `http`: HTTP/1.1 framing (sans-IO): the request written here, the response read by httptools.
- `connection`: one HTTP/1.1 connection per host, bound to its NTLM/Basic/Kerberos authentication,
  with a response size cap and one deadline covering every byte.
- `session`: the PSRP conversation (pool open, one pipeline, close) on psrpcore's public
  `ClientRunspacePool` / `ClientPowerShell`.
"""
