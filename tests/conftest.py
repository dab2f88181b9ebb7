"""Shared test settings."""

import os

import torch
from hypothesis import settings

# Deterministic, single-threaded CPU maths keeps tests reproducible and fast on 2 cores.
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

settings.register_profile("ci", deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
