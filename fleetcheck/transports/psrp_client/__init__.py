"""The native PSRP client: psrpcore's client state machines driven over WSMan with h11.

- `envelope`: WSMan SOAP requests and replies, faults and message encryption (sans-IO).
- `connection`: one HTTP/1.1 connection per host (h11), bound to its NTLM/Basic authentication,
  with a response size cap and one deadline covering every byte.
- `session`: the PSRP conversation (pool open, one pipeline, close) on psrpcore's public
  `ClientRunspacePool` / `ClientPowerShell`.
"""
