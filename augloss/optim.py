"""SGD, Adam and AdamW on torch's own public functional kernels, without ``torch._dynamo``.

Every ``torch.optim`` optimizer imports ``torch._dynamo`` on its first use (``Optimizer.__init__``
and ``step`` are wrapped to break compiled graphs): about 2 s of CPU per process here, paid by
each of the demo's ~90 training jobs, more than most of them spend training. These classes keep
the state ``torch.optim.SGD`` / ``Adam`` / ``AdamW`` keep (``momentum_buffer``; ``step``,
``exp_avg``, ``exp_avg_sq``) and hand it to the same public functional API those classes call
(``torch.optim.sgd.sgd``, ``torch.optim.adam.adam``) with the same arguments, so the arithmetic
is torch's: ``tests/test_optim.py`` checks that parameters and state match ``torch.optim``
exactly, step by step. ``foreach=None`` lets torch choose its kernels as the classes do (the
multi-tensor path on CUDA, one tensor at a time on the CPU).

Only what training uses is provided: one parameter group, ``param_groups[0]["lr"]`` set per step
by the schedule, ``zero_grad(set_to_none=True)``, ``step()``, ``state_dict()`` /
``load_state_dict()`` (tensors and numbers only: checkpoints load with ``weights_only=True``).
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam
from torch.optim.sgd import sgd

OPTIMIZERS = ("sgd", "adam", "adamw")
# Part of a training checkpoint's hash: a checkpoint holding another state layout (e.g.
# torch.optim's) is never resumed, the run starts over.
STATE_FORMAT = "augloss.optim/1"


class Optimizer:
    """One parameter group updated by torch's functional SGD or Adam(W)."""

    def __init__(self, kind: str, params, *, lr: float, weight_decay: float = 0.0,
                 momentum: float = 0.0, nesterov: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if kind not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {kind!r}")
        if nesterov and momentum <= 0:
            raise ValueError("nesterov momentum requires a momentum > 0")
        self.kind = kind
        self.params = [p for p in params]
        group = {"lr": float(lr), "weight_decay": float(weight_decay)}
        if kind == "sgd":
            group.update(momentum=float(momentum), nesterov=bool(nesterov), dampening=0.0)
        else:
            group.update(betas=(float(betas[0]), float(betas[1])), eps=float(eps))
        self.param_groups = [group]
        self.state: list[dict[str, torch.Tensor]] = [{} for _ in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [p.grad for p in params]
        g = self.param_groups[0]
        if self.kind == "sgd":
            buffers = [self.state[i].get("momentum_buffer") for i in live]
            sgd(params, grads, buffers, weight_decay=g["weight_decay"], momentum=g["momentum"],
                lr=g["lr"], dampening=g["dampening"], nesterov=g["nesterov"], maximize=False,
                foreach=None)
            if g["momentum"] != 0:
                for i, buf in zip(live, buffers):
                    self.state[i]["momentum_buffer"] = buf
            return
        for i in live:
            if not self.state[i]:
                p = self.params[i]
                self.state[i] = {
                    "step": torch.tensor(0.0, dtype=torch.get_default_dtype()),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        states = [self.state[i] for i in live]
        beta1, beta2 = g["betas"]
        adam(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
             [], [s["step"] for s in states], foreach=None,
             decoupled_weight_decay=self.kind == "adamw", amsgrad=False, beta1=beta1,
             beta2=beta2, lr=g["lr"], weight_decay=g["weight_decay"], eps=g["eps"],
             maximize=False)

    def state_dict(self) -> dict:
        """``{"kind", "param_groups", "state"}``: the state by parameter index (tensors)."""
        return {"kind": self.kind, "param_groups": [dict(g) for g in self.param_groups],
                "state": {i: dict(s) for i, s in enumerate(self.state) if s}}

    def load_state_dict(self, sd: dict) -> None:
        if sd.get("kind") != self.kind:
            raise ValueError(f"optimizer state of {sd.get('kind')!r}, not {self.kind!r}")
        groups = sd["param_groups"]
        if len(groups) != 1 or set(groups[0]) != set(self.param_groups[0]):
            raise ValueError("optimizer state does not match this optimizer's settings")
        state = [{} for _ in self.params]
        for i, s in sd["state"].items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"optimizer state names parameter {i} of {len(self.params)}")
            p = self.params[i]
            state[i] = {k: (v.to(p.device) if k != "step" else v.clone())
                        for k, v in s.items()}
        g = dict(groups[0])
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        self.param_groups = [g]
        self.state = state


def create(kind: str, params, **options) -> Optimizer:
    """The optimizer ``kind`` (``sgd``, ``adam``, ``adamw``) over ``params``."""
    return Optimizer(kind, params, **options)
