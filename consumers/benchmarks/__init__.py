"""Micro-benchmarks behind `ledger bench TARGET`, one module per target."""
