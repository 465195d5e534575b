"""The `yidi` command: one entry point for operators, integrators and analysts."""
