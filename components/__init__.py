"""Containerised pipeline steps: one package per step plus shared code in common."""
