"""Synthetic screening image set: small greyscale mammograms, rare lesions, two scanners."""
