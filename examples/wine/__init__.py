"""The wine example: three cultivars, a multi-class label."""
