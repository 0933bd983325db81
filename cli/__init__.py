"""The `kubeloop` command: one module per command group, shared helpers in `cli.common`."""
