"""Project scripts: run as `python scripts/NAME.py` or imported as `scripts.NAME` (tests, docs hooks)."""
