"""Connection plugins: one async interface (`base.Transport`), one module per protocol."""
