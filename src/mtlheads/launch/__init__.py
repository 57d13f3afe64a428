"""Launching jobs: Hydra resolvers, run and sweep directories, one job around a mode (failures, resume)."""
