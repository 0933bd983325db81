"""The kubeloop operator: ModelRollout and RetrainPolicy reconciled by kopf on pure decision functions."""
