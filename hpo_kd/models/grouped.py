"""Several students of one architecture trained in lockstep as one model, each exactly as alone.

A study trains, per setting and seed, several students that see the same batches: the grid's
temperatures, no-KD, DTS, CTKD, LS-KD. `GroupedStudents` runs G of them as one model that returns
their (G, B, out) logits, in one of two ways:

- **own modules** (`fused=False`): each member's forward is its own module's, so every member's
  logits, gradients and BatchNorm statistics come from the same ATen operations, on the same
  shapes and strides, as the student trained alone: bitwise the same by construction, on any
  CPU or GPU. What the group saves is the step's shared work (batch, augmentation, teacher
  logits, one backward call, one optimizer step).
- **fused** (`fused=True`): the convolutional part runs as one convolution with G times the
  channels (grouped after the first layer) and one BatchNorm over G times the channels; member
  g's channels are the g-th block of every wide activation. Linear layers stay per member
  (`F.linear` on the member's own contiguous features: `nn.Linear`'s own operation). Where a
  fused kernel sums in another order than a plain convolution, the sum is done per member: the
  input gradient of a grouped convolution is each member's own `convolution_backward`. The
  forward and weight gradient of the wide convolution are a different kernel call from the
  member's own, and whether they are bitwise the same depends on the machine's kernels: fused
  groups are used only where `bitwise_check` passes on the machine at hand; elsewhere the group
  runs on own modules.

Supported for grouping: an `nn.Sequential` of convolutions (1-D or 2-D, zero padding; the first one
with groups = 1), BatchNorm with running statistics and a momentum (or none), `Linear`,
`Flatten`, pooling and element-wise activations. The built-in students (`mlp`, `mlp_wide`,
`cnn_small`, `cnn_bn`) are; the CIFAR zoo and timm models (residual blocks) are not, and train
one by one.
"""

from __future__ import annotations

import copy
import functools
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Identity)
# Per channel and per sample: valid on the wide layout (B, G*C, ...), where each channel is one member's.
PER_CHANNEL = (
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.MaxPool1d,
    nn.MaxPool2d,
)
CONVS = (nn.Conv1d, nn.Conv2d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def why_not_groupable(model: nn.Module) -> Optional[str]:
    """None if `model` can train in a group; otherwise the reason it cannot."""
    if not isinstance(model, nn.Sequential):
        return f"{type(model).__name__} is not an nn.Sequential"
    layout = "shared"
    for i, m in enumerate(model):
        where = f"layer {i} ({type(m).__name__})"
        if isinstance(m, CONVS):
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                return f"{where}: only zero padding given as numbers"
            if layout == "shared" and m.groups != 1:
                return f"{where}: a first convolution with groups = {m.groups}"
            if layout not in ("shared", "wide"):
                return f"{where}: a convolution after a flatten"
            layout = "wide"
        elif isinstance(m, BATCHNORMS):
            if layout != "wide":
                return f"{where}: BatchNorm outside the convolutional part"
            if m.track_running_stats and m.momentum is None:
                return f"{where}: BatchNorm with a cumulative average (momentum None)"
        elif isinstance(m, nn.Linear):
            if layout == "wide":
                return f"{where}: a linear layer on unflattened feature maps"
            layout = "split"
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                return f"{where}: a flatten of other dimensions than 1..-1"
            if layout == "wide":
                layout = "split"
        elif isinstance(m, PER_CHANNEL):
            if layout != "wide":
                return f"{where}: pooling outside the convolutional part"
        elif isinstance(m, nn.Dropout) and m.p == 0:
            pass
        elif not isinstance(m, ELEMENTWISE):
            return f"{where} is not a supported layer"
    if layout != "split":
        return "the model does not end with a linear layer"
    return None


class _GroupedConv(torch.autograd.Function):
    """A grouped convolution of G members' wide input: one kernel forward and for the weight (and
    bias) gradient, which are each member's own bitwise; the input gradient per member, since the
    grouped backward-data sums in another order than a plain convolution's."""

    @staticmethod
    def forward(ctx, x, w, b, G, stride, padding, dilation, groups):
        ctx.save_for_backward(x, w)
        ctx.cfg = (G, stride, padding, dilation, groups, b is not None)
        conv = F.conv1d if x.dim() == 3 else F.conv2d
        return conv(x, w, b, stride, padding, dilation, groups * G)

    @staticmethod
    def backward(ctx, go):
        x, w = ctx.saved_tensors
        G, stride, padding, dilation, groups, has_bias = ctx.cfg
        zeros = [0] * (x.dim() - 2)
        gx = gw = gb = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            _, gw, gb = torch.ops.aten.convolution_backward(
                go,
                x,
                w,
                [w.shape[0]] if has_bias else None,
                stride,
                padding,
                dilation,
                False,
                zeros,
                groups * G,
                [False, True, has_bias],
            )
        if ctx.needs_input_grad[0]:
            cin, cout = x.shape[1] // G, go.shape[1] // G
            gx = torch.cat(
                [
                    torch.ops.aten.convolution_backward(
                        go[:, g * cout : (g + 1) * cout],
                        x[:, g * cin : (g + 1) * cin],
                        w[g * cout : (g + 1) * cout],
                        None,
                        stride,
                        padding,
                        dilation,
                        False,
                        zeros,
                        groups,
                        [True, False, False],
                    )[0]
                    for g in range(G)
                ],
                1,
            )
        return gx, gw, gb, None, None, None, None, None


class GroupedStudents:
    """G members (same architecture, train mode) as one model: `(x) -> (G, B, out)` logits, through
    each member's own modules (`fused=False`) or fused convolutions (`fused=True`).

    Parameters stay the members' own (leaf tensors, concatenated at every fused forward, so each
    member's gradient lands on its own parameters and an optimizer over them updates each as
    alone). Fused, the BatchNorm running statistics live in one wide buffer per layer, and every
    member's buffer is a view of its block, so a member module evaluates with its own statistics;
    `sync()` adds the batches the group counted to each member's `num_batches_tracked`."""

    def __init__(self, members: Sequence[nn.Module], fused: bool = True):
        reason = why_not_groupable(members[0])
        if reason:
            raise ValueError(f"cannot group: {reason}")
        self.members = list(members)
        self.fused = fused
        self.G = len(self.members)
        self.layers = [list(m) for m in self.members]
        self.wide = {}
        self._batches = 0
        if not fused:  # each member's modules keep and count their own statistics
            return
        for i, layer in enumerate(self.layers[0]):
            if isinstance(layer, BATCHNORMS) and layer.track_running_stats:
                mods = [ls[i] for ls in self.layers]
                stats = {}
                for name in ("running_mean", "running_var"):
                    wide = torch.cat([getattr(m, name) for m in mods])
                    c = layer.num_features
                    for g, m in enumerate(mods):
                        m._buffers[name] = wide[g * c : (g + 1) * c]
                    stats[name] = wide
                self.wide[i] = stats

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return torch.stack([m(x) for m in self.members])
        G, h, layout = self.G, x, "shared"
        for i, layer in enumerate(self.layers[0]):
            mods = [ls[i] for ls in self.layers]
            if isinstance(layer, CONVS):
                w = torch.cat([m.weight for m in mods])
                b = torch.cat([m.bias for m in mods]) if layer.bias is not None else None
                if layout == "shared":  # one convolution with every member's filters
                    conv = F.conv1d if isinstance(layer, nn.Conv1d) else F.conv2d
                    h = conv(h, w, b, layer.stride, layer.padding, layer.dilation, layer.groups)
                else:
                    h = _GroupedConv.apply(h, w, b, G, layer.stride, layer.padding, layer.dilation, layer.groups)
                layout = "wide"
            elif isinstance(layer, BATCHNORMS):
                stats = self.wide.get(i, {})
                weight = torch.cat([m.weight for m in mods]) if layer.affine else None
                bias = torch.cat([m.bias for m in mods]) if layer.affine else None
                h = F.batch_norm(
                    h,
                    stats.get("running_mean"),
                    stats.get("running_var"),
                    weight,
                    bias,
                    layer.training or not layer.track_running_stats,
                    layer.momentum or 0.0,
                    layer.eps,
                )
            elif isinstance(layer, nn.Flatten):
                h = h.flatten(1)
                if layout == "wide":  # (B, G*F): member g's features are the g-th block
                    layout = "split"
            elif isinstance(layer, nn.Linear):
                if layout == "shared":  # every member reads the same input
                    h = [h] * G
                elif layout == "split":  # (B, G*F): member g's features, contiguous as alone
                    h = [part.contiguous() for part in h.chunk(G, 1)]
                h = [F.linear(hg, m.weight, m.bias) for hg, m in zip(h, mods)]
                layout = "members"
            elif layout == "members":  # element-wise, on each member's own tensor
                h = [layer(hg) for hg in h]
            else:  # element-wise, or per channel on the wide layout
                h = layer(h)
        self._batches += 1
        return torch.stack(h)

    def sync(self) -> None:
        """Count the group's training batches in every member's BatchNorm `num_batches_tracked`
        (which is all the group leaves to do per member; the statistics are shared views)."""
        if self._batches and any(m.training for m in self.layers[0]):
            for ls in self.layers:
                for m in ls:
                    if isinstance(m, BATCHNORMS) and m.track_running_stats and m.training:
                        m.num_batches_tracked.add_(self._batches)
        self._batches = 0


def bitwise_check(members: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, fused: bool = True) -> Optional[str]:
    """One training step of copies of `members` as a group against each copy alone, on batch
    (x, y): None if every member's logits, parameter gradients and BatchNorm statistics are
    bitwise the same; otherwise what differs. The members are not changed."""
    grouped = [copy.deepcopy(m) for m in members]
    alone = [copy.deepcopy(m) for m in members]
    with torch.enable_grad():
        z = GroupedStudents(grouped, fused)(x)
        sum(F.cross_entropy(z[g].float(), y) for g in range(len(grouped))).backward()
        for g, m in enumerate(alone):
            zg = m(x)
            F.cross_entropy(zg.float(), y).backward()
            if not torch.equal(zg, z[g]):
                return f"member {g}: logits"
            for (name, a), b in zip(m.named_parameters(), grouped[g].parameters()):
                if (a.grad is None) != (b.grad is None) or (a.grad is not None and not torch.equal(a.grad, b.grad)):
                    return f"member {g}: gradient of {name}"
            for (name, a), b in zip(m.named_buffers(), grouped[g].buffers()):
                if a.is_floating_point() and not torch.equal(a, b):
                    return f"member {g}: buffer {name}"
    return None


def fused_kernels_exact(
    student: str = "cnn_bn", input_shape=(1, 40), batch: int = 128, members: int = 3
) -> Optional[str]:
    """None if a fused group of `student`s is bitwise each member alone on this machine (one step on
    random data); else what differs. What a CI log prints, so that it says which path ran."""
    from . import create

    torch.manual_seed(0)
    group = [create(student, input_shape, 10).train() for _ in range(members)]
    return bitwise_check(group, torch.randn(batch, *input_shape), torch.randint(0, 10, (batch,)))


@functools.lru_cache(maxsize=None)
def trains_in_groups(name: str) -> bool:
    """Whether model `name` (a registered one) has an architecture that trains in a group; a
    planning hint for the runner, which groups only such students (the trainer checks again on the
    real model and data, bitwise, and trains them one by one where that fails). timm models and
    the CIFAR zoo (residual blocks) do not."""
    from . import MODELS, create

    if name not in MODELS:
        return False
    try:  # the built-ins take 1-D signals or images alike; the structure is what counts here
        return why_not_groupable(create(name, (1, 32), 10)) is None
    except Exception:
        return False


def machine_line() -> str:
    """One line for a log: the CPU model, torch's CPU capability, and which group path runs here."""
    from ..provenance import cpu_model

    cpu = cpu_model()
    why = fused_kernels_exact()
    path = "fused kernels (bitwise as alone)" if why is None else f"own modules (fused kernels not exact here: {why})"
    return (
        f"CPU: {cpu}; torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}; "
        f"grouped students: {path}"
    )


if __name__ == "__main__":
    print(machine_line())
