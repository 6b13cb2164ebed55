"""Output plugins: one module per format, looked up by name in `base.WRITERS`."""
