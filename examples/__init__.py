"""Runnable examples: data generators and configs."""
