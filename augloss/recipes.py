"""Named training recipes, each labelled with its source. None of them is from paper 1, whose
training settings are unknown (see ../shared/reference/paper.md sections 7, 9, 10).

Use :func:`recipe` to get a :class:`augloss.train.TrainConfig` dict with overrides applied; the
workflow's config files repeat these blocks so every value is visible and versioned there.
"""

from __future__ import annotations

import copy

RECIPES: dict[str, dict] = {
    # The authors' earlier code (arXiv 2403.08793), FF2 main run: Adam (Keras eps 1e-7), peak LR
    # 1e-3, 800 warm-up steps then cosine to 8,000 steps, 1e-7 added to every step's LR, batch
    # 64, 80 "epochs" of 100 steps, abort if training accuracy < 0.22 from 0-based epoch 7.
    "surrogate": {
        "epochs": 80, "steps_per_epoch": 100, "batch_size": 64, "eval_batch_size": 1000,
        "optimizer": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "adam_eps": 1e-7,
        "weight_decay": 0.0, "nesterov": False, "momentum": 0.0, "schedule": "cosine",
        "warmup_steps": 800, "lr_floor": 1e-7, "abort": [[7, 0.22]], "evaluate_test": False,
    },
    # The earlier code's FF2 pre-filter: batch 128, 8 "epochs" of 100 steps on the same 8,000-step
    # schedule (so the LR only warms up); the candidate fails if its best training accuracy
    # stays below 0.35.
    "surrogate_prefilter": {
        "epochs": 8, "steps_per_epoch": 100, "batch_size": 128, "eval_batch_size": 1000,
        "optimizer": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "adam_eps": 1e-7,
        "weight_decay": 0.0, "nesterov": False, "momentum": 0.0, "schedule": "cosine",
        "warmup_steps": 800, "total_steps": 8000, "lr_floor": 1e-7, "fail_below": 0.35,
        "evaluate_test": False,
    },
    # The earlier code's FF1 (screens the initial pool): batch 128, 80 x 100 steps, abort if
    # training accuracy < 0.35 from 0-based epoch 6, fail if it never reaches 0.35.
    "surrogate_ff1": {
        "epochs": 80, "steps_per_epoch": 100, "batch_size": 128, "eval_batch_size": 1000,
        "optimizer": "adam", "lr": 1e-3, "betas": [0.9, 0.999], "adam_eps": 1e-7,
        "weight_decay": 0.0, "nesterov": False, "momentum": 0.0, "schedule": "cosine",
        "warmup_steps": 800, "lr_floor": 1e-7, "abort": [[6, 0.35]], "fail_below": 0.35,
        "evaluate_test": False,
    },
    # WRN-28-10: the standard WRN recipe, NOT from the paper (Zagoruyko & Komodakis 2016 use SGD
    # Nesterov 0.9, LR 0.1, weight decay 5e-4, batch 128, 200 epochs; we use a cosine schedule
    # in place of their x0.2 steps at epochs 60/120/160, which "step" reproduces).
    "wrn": {
        "epochs": 200, "batch_size": 128, "eval_batch_size": 512, "optimizer": "sgd",
        "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
        "schedule": "cosine", "warmup_steps": 0,
    },
    # EfficientNetV2-S fine-tuning: NOT from the paper. Optimizer, batch and schedule follow the
    # hint of the authors' earlier code (Adam, batch 64, warm-up + cosine, peak 1e-3); the epoch
    # count (30) and the 1-epoch-equivalent warm-up are our choices.
    "efficientnetv2_s_finetune": {
        "epochs": 30, "batch_size": 64, "eval_batch_size": 128, "optimizer": "adam",
        "lr": 1e-3, "betas": [0.9, 0.999], "adam_eps": 1e-7, "weight_decay": 0.0,
        "nesterov": False, "momentum": 0.0, "schedule": "cosine", "warmup_steps": 100,
    },
}


def recipe(name: str, **overrides) -> dict:
    """A copy of recipe ``name`` with ``overrides`` applied (unknown keys fail in TrainConfig)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; recipes are {', '.join(RECIPES)}")
    out = copy.deepcopy(RECIPES[name])
    out.update(overrides)
    return out
