"""Built-ins for 28x28 grey images (MNIST, Animal-MNIST, IDX files), sized for a CPU.

`cnn28` is the teacher the 28x28 studies share, and `hinton_teacher` / `hinton_student` are the
two networks of Hinton, Vinyals & Dean (2015, section 3) on MNIST.
"""

from __future__ import annotations

from torch import nn

from . import MODELS


def _flat(input_shape) -> int:
    n = 1
    for s in input_shape:
        n *= s
    return n


@MODELS.register("cnn28")
def cnn28(input_shape, num_classes, width: int = 16, **_):
    """Two 3x3 convolutions (16 and 32 channels) with BatchNorm, each followed by 2x2 max pooling,
    and a 128-unit hidden layer on the flattened map: LeNet's shape, ~0.2 M parameters on 28x28."""
    c, h, w = input_shape
    return nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (h // 4) * (w // 4), 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


def _mlp(n_in: int, hidden: int, layers: int, num_classes: int, dropout: float = 0.0, input_dropout: float = 0.0):
    mods = [nn.Flatten()]
    if input_dropout:
        mods.append(nn.Dropout(input_dropout))
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout:
            mods.append(nn.Dropout(dropout))
        width = hidden
    return nn.Sequential(*mods, nn.Linear(width, num_classes))


@MODELS.register("hinton_teacher")
def hinton_teacher(input_shape, num_classes, width: int = 1200, **_):
    """Hinton et al. (2015)'s MNIST teacher: two hidden layers of 1,200 ReLUs, dropout 0.5 on the
    hidden units and 0.2 on the inputs (their paper's regularisation: dropout and weight
    constraints; we have no max-norm constraint)."""
    return _mlp(_flat(input_shape), width, 2, num_classes, dropout=0.5, input_dropout=0.2)


@MODELS.register("hinton_student")
def hinton_student(input_shape, num_classes, width: int = 800, **_):
    """Hinton et al. (2015)'s MNIST student: two hidden layers of 800 ReLUs, no regularisation."""
    return _mlp(_flat(input_shape), width, 2, num_classes)
