"""Rollout engine: a pure decision core (`decide`) and an async driver that
carries its actions out (`cloud.engine.driver`)."""
