"""MKD, Meta Knowledge Distillation (arXiv 2202.07940): meta-learned tau_t and tau_s.

The temperatures are meta parameters stored as logarithms and clamped to [tau_min, tau_max].
On a meta step (every `every` training steps):

1. L(theta, tau): the KD loss on the training batch (the trainer's forward, reused);
2. theta' = theta - eta * grad_theta L(theta, tau), kept in the graph (torch.func.functional_call,
   no copy of the model); eta defaults to the current learning rate;
3. meta objective: cross-entropy of the look-ahead student theta' on a batch of the `meta` split
   (un-augmented; `meta_augment=True`: through the trial's augmentation, soft targets included);
4. log tau <- Adam step with d(meta objective)/d(log tau), differentiated through theta'
   (the exact second-order hypergradient);
5. theta <- the ordinary optimizer step, with the gradient of step 2 (no second backward).

`first_order=True` does not differentiate through the network twice. It uses
d(meta)/d tau = -eta * sum_b d/d tau[dL/dz_b] . (J_b v), v = grad of the meta loss at theta',
with J v (the student's logit change along v) taken by a finite difference: one extra forward of
the student without graph. This linearises the student around theta (cheaper, less exact).
"""

from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ..errors import UserError, check_range
from .base import Step, TemperatureMethod, register

TAU = 4.0  # the initial temperatures (and where a temperature that is not learned is held)
TAU_MIN, TAU_MAX = 0.5, 20.0  # the clamps' defaults


@register("mkd")
class MKD(TemperatureMethod):
    name = "mkd"
    kind = "learned"
    label = "MKD"
    color = "C3"
    marker = "*"
    order = 20
    trajectory_colors = {"tau_t": "C0", "tau_s": "C1"}
    beside_transfer = True

    def __init__(
        self,
        tau_t: float = TAU,
        tau_s: float = TAU,
        learn: str = "both",
        meta_lr: float = 0.02,
        every: int = 1,
        first_order: bool = False,
        lookahead_lr: float | None = None,
        tau_min: float = TAU_MIN,
        tau_max: float = TAU_MAX,
        fd_eps: float = 1e-3,
        meta_augment: bool = False,
    ):
        if learn not in ("both", "tau_t", "tau_s"):
            raise UserError(f"mkd option learn = {learn!r}; allowed: both, tau_t, tau_s")
        check_range("tau_min", tau_min, 0, None, lo_open=True)
        check_range("tau_max", tau_max, tau_min, None, lo_open=True)
        check_range("tau_t", tau_t, tau_min, tau_max)
        check_range("tau_s", tau_s, tau_min, tau_max)
        check_range("meta_lr", meta_lr, 0, None, lo_open=True)
        check_range("every", every, 1, None)
        if lookahead_lr is not None:
            check_range("lookahead_lr", lookahead_lr, 0, None, lo_open=True)
        super().__init__(tau_t, tau_s)
        self.learn = learn
        self.every = int(every)
        self.first_order = bool(first_order)
        self.lookahead_lr = lookahead_lr
        self.fd_eps = float(fd_eps)
        self.meta_augment = bool(meta_augment)
        self.bounds = (math.log(tau_min), math.log(tau_max))
        self.log_tau_t = torch.tensor(math.log(tau_t), requires_grad=learn in ("both", "tau_t"))
        self.log_tau_s = torch.tensor(math.log(tau_s), requires_grad=learn in ("both", "tau_s"))
        self.meta_params = [p for p in (self.log_tau_t, self.log_tau_s) if p.requires_grad]
        self.meta_opt = torch.optim.Adam(self.meta_params, lr=meta_lr)
        self._step = 0
        self._meta_iter = None
        self._meta_losses: list[float] = []

    # -- what the report draws of it ------------------------------------------------------
    @classmethod
    def moved_temperatures(cls, options):
        learn = options.get("learn", "both")
        return [(col, "τ_" + col[-1]) for col in ("tau_t", "tau_s") if learn in ("both", col)]

    @classmethod
    def clamps(cls, options):
        return options.get("tau_min", TAU_MIN), options.get("tau_max", TAU_MAX)

    @classmethod
    def held_temperatures(cls, options):
        learn = options.get("learn", "both")
        return {k: options.get(k, TAU) for k in ("tau_t", "tau_s") if learn not in ("both", k)}

    # -- lifecycle -------------------------------------------------------------------------
    def relative_cost(self) -> float:
        # A meta step adds about two student passes (exact: the look-ahead's double backward and
        # the meta batch; first-order: a meta batch and one forward); bench/method_cost.py measures it.
        extra = 1.0 if self.first_order else 2.0
        return 1.0 + extra / self.every

    def setup(self, ctx):
        super().setup(ctx)
        if ctx.meta_batches is None:
            raise UserError("mkd needs the `meta` split, but this trial provides none")
        dev = ctx.device
        # Move the meta parameters without re-creating them (the optimizer holds them).
        for p in (self.log_tau_t, self.log_tau_s):
            p.data = p.data.to(dev)
        self._meta_iter = ctx.meta_batches(True) if self.meta_augment else ctx.meta_batches()

    def start_epoch(self, epoch: int) -> None:
        self._meta_losses = []

    def _is_meta_step(self) -> bool:
        return self._step % self.every == 0

    def temperatures(self):
        t, s = self.log_tau_t.exp(), self.log_tau_s.exp()
        if not self._is_meta_step():
            t, s = t.detach(), s.detach()
        return t, s

    def current(self):
        return float(self.log_tau_t.detach().exp()), float(self.log_tau_s.detach().exp())

    # -- the meta step -------------------------------------------------------------------
    def _named_params(self):
        return {n: p for n, p in self.ctx.model.named_parameters() if p.requires_grad}

    def _eta(self, step: Step) -> float:
        return self.lookahead_lr if self.lookahead_lr is not None else step.lr

    def _meta_loss(self, params: Dict[str, torch.Tensor], x, y) -> torch.Tensor:
        model = self.ctx.model
        # Buffers are copied so a BatchNorm forward of the look-ahead model leaves the real
        # running statistics untouched.
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        logits = functional_call(model, (params, buffers), (x,))
        return F.cross_entropy(logits, y)

    def backward(self, step: Step) -> None:
        is_meta = self._is_meta_step()
        self._step += 1
        if not is_meta:
            step.losses["loss"].backward()
            return
        x_meta, y_meta = next(self._meta_iter)
        eta = self._eta(step)
        if self.first_order:
            hyper, meta = self._hypergrad_linearised(step, x_meta, y_meta, eta)
        else:
            hyper, meta = self._hypergrad_exact(step, x_meta, y_meta, eta)
        self._meta_losses.append(meta)
        self.meta_opt.zero_grad(set_to_none=True)
        for p, g in zip(self.meta_params, hyper):
            p.grad = g
        self.meta_opt.step()
        with torch.no_grad():
            for p in (self.log_tau_t, self.log_tau_s):
                p.clamp_(*self.bounds)

    def hypergradient(self, step: Step, x_meta, y_meta, eta: float):
        """d(meta loss of the look-ahead student)/d(log tau) for the learned temperatures.

        Fills the student's .grad with the step's gradient as a side effect (as in training)."""
        if self.first_order:
            return self._hypergrad_linearised(step, x_meta, y_meta, eta)
        return self._hypergrad_exact(step, x_meta, y_meta, eta)

    def _hypergrad_exact(self, step: Step, x_meta, y_meta, eta):
        named = self._named_params()
        names, params = list(named), list(named.values())
        grads = torch.autograd.grad(step.losses["loss"], params, create_graph=True)
        lookahead = {n: p - eta * g for n, p, g in zip(names, params, grads)}
        meta = self._meta_loss(lookahead, x_meta, y_meta)
        hyper = torch.autograd.grad(meta, self.meta_params)
        for p, g in zip(params, grads):
            p.grad = g.detach()
        return hyper, float(meta.detach())

    def _hypergrad_linearised(self, step: Step, x_meta, y_meta, eta):
        named = self._named_params()
        params = list(named.values())
        z = step.student_logits
        # dL/dz keeps its graph to tau; one ordinary backward through the network gives grad_theta.
        dz = torch.autograd.grad(step.losses["loss"], z, create_graph=True)[0]
        torch.autograd.backward(z, grad_tensors=dz.detach(), inputs=params)
        with torch.no_grad():
            lookahead = {n: (p - eta * p.grad).detach().requires_grad_() for n, p in named.items()}
        meta = self._meta_loss(lookahead, x_meta, y_meta)
        v = torch.autograd.grad(meta, list(lookahead.values()))
        with torch.no_grad():
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in v)).item()
            if norm == 0.0:
                return [torch.zeros_like(p) for p in self.meta_params], float(meta)
            theta_norm = torch.sqrt(sum((p.double() ** 2).sum() for p in params)).item()
            h = self.fd_eps * max(theta_norm, 1.0) / norm
            moved = {n: p + h * g for (n, p), g in zip(named.items(), v)}
            buffers = {n: b.clone() for n, b in self.ctx.model.named_buffers()}
            z_moved = functional_call(self.ctx.model, (moved, buffers), (step.x,))
            if self.ctx.precision == "fp32":
                z0 = z.detach()
            else:  # the trainer's logits came from a bf16 forward: difference two fp32 forwards
                z0 = functional_call(
                    self.ctx.model, (dict(named), {n: b.clone() for n, b in self.ctx.model.named_buffers()}), (step.x,)
                )
            jv = (z_moved - z0) / h
        hyper = torch.autograd.grad(-eta * (dz * jv).sum(), self.meta_params)
        return hyper, float(meta.detach())

    # -- logging and checkpoints -----------------------------------------------------------
    def epoch_metrics(self):
        if not self._meta_losses:
            return {}
        return {"meta_loss": sum(self._meta_losses) / len(self._meta_losses)}

    def state_dict(self):
        return {
            "log_tau_t": float(self.log_tau_t.detach()),
            "log_tau_s": float(self.log_tau_s.detach()),
            "meta_opt": self.meta_opt.state_dict(),
            "step": self._step,
        }

    def load_state_dict(self, state):
        with torch.no_grad():
            self.log_tau_t.fill_(state["log_tau_t"])
            self.log_tau_s.fill_(state["log_tau_s"])
        self.meta_opt.load_state_dict(state["meta_opt"])
        self._step = int(state["step"])
