"""PowerShell probes: facts collected remotely, composed into one static script per host.

`schema` holds the per-probe models; `bundle` composes and parses.
"""
