"""`kubeloop loop`: the closed-loop demo on 127.0.0.1 (what `make run` runs)."""
