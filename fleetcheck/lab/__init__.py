"""The simulated Windows fleet (`fleetcheck lab`).

The product never imports this package. This package imports from the product only the
contracts it simulates (`fleetcheck.facts`, `fleetcheck.probes.schema`, the bundle contract in
`fleetcheck.probes.bundle`, `fleetcheck.transports.bootstrap`) and the shared plumbing
(`fleetcheck.errors`, `fleetcheck.yamlfile`).
"""
