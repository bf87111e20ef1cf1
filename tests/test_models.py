"""Model factory (hpo_kd.models)."""

import pytest
import torch

from hpo_kd import models
from hpo_kd.errors import UserError

BUILTINS = ["mlp", "mlp_wide", "cnn_small", "cnn_wide"]


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(models.names())


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 40)])
def test_builtin_logits_shape(name, shape):
    torch.manual_seed(0)
    m = models.create(name, shape, 10)
    m.eval()
    x = torch.randn(5, *shape)
    out = m(x)
    assert out.shape == (5, 10)
    assert torch.isfinite(out).all()
    # The logits depend on the input (not a constant head).
    assert not torch.allclose(out[0], out[1])
    # Another class count changes the head.
    assert models.create(name, shape, 3)(x).shape == (5, 3)


def test_conv_builtins_adapt_to_input_rank():
    c1 = models.create("cnn_small", (1, 40), 10)
    c2 = models.create("cnn_small", (1, 8, 8), 10)
    assert any(isinstance(m, torch.nn.Conv1d) for m in c1.modules())
    assert any(isinstance(m, torch.nn.Conv2d) for m in c2.modules())
    assert models.count_parameters(models.create("mlp_wide", (1, 8, 8), 10)) > models.count_parameters(
        models.create("mlp", (1, 8, 8), 10)
    )


def test_timm_model_by_name():
    torch.manual_seed(0)
    m = models.create("resnet10t", (3, 32, 32), 7)
    m.eval()
    out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7) and torch.isfinite(out).all()


def test_timm_model_needs_images():
    with pytest.raises(UserError) as e:
        models.create("resnet10t", (1, 40), 10)
    assert "resnet10t" in str(e.value) and "(C, H, W)" in str(e.value)


def test_unknown_model_lists_names():
    with pytest.raises(UserError) as e:
        models.create("no_such_net", (1, 8, 8), 10)
    msg = str(e.value)
    assert "'no_such_net'" in msg and "allowed" in msg
    for name in BUILTINS:
        assert name in msg
    assert "timm" in msg


def test_bad_input_rank_is_a_user_error():
    with pytest.raises(UserError):
        models.create("cnn_small", (1, 2, 8, 8), 10)
