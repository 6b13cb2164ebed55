"""Output plugins: one module per format, looked up by name in `base.WRITERS`;
each has `render(result, context) -> str` and `write(result, path, context)`."""
