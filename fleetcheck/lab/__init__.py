"""The simulated Windows fleet (`fleetcheck lab`).

The product never imports this package; this package imports only `fleetcheck.facts`,
`fleetcheck.probes.schema` and `fleetcheck.transports.bootstrap` (the contracts it simulates).
"""
