"""The native PSRP client: psrpcore's client state machines driven over WSMan, over asyncio.

- `envelope`: WSMan SOAP requests and replies, faults and message encryption (sans-IO).
- `http`: HTTP/1.1 framing (sans-IO): the request written here, the response read by httptools.
- `connection`: one HTTP/1.1 connection per host, bound to its NTLM/Basic/Kerberos authentication,
  with a response size cap and one deadline covering every byte.
- `session`: the PSRP conversation (pool open, one pipeline, close) on psrpcore's public
  `ClientRunspacePool` / `ClientPowerShell`.
- `payloads`: what a run does once with psrpcore for all its hosts (the messages it sends, and
  the opening and Completed messages every host of one build answers with), and the MS-PSRP
  fragment framing those caches read.
- `md4`: the NT hash of a password (NTLM's key), without pycryptodomex's import cost.
"""
