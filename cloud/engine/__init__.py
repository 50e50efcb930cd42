"""Rollout engine: pure decision cores and their settings and state. Nothing
here does I/O (no store, no network, no clock of its own); the async driver
that carries the actions out is `cloud.driver`, beside the bridge."""
