"""CIFAR model zoo (hpo_kd.models.cifar) and teacher checkpoint loading (hpo_kd.models.checkpoint).

The exact counts and key names were computed from the reference definitions
(HobbitLong/RepDistiller `models/`, identical in megvii-research/mdistiller
`mdistiller/models/cifar/`) for 100 classes.
"""

import hashlib

import pytest
import torch

from hpo_kd import models
from hpo_kd.errors import UserError
from hpo_kd.models.checkpoint import file_hash, load_weights

SHAPE = (3, 32, 32)

# name: (exact parameter count at 100 classes, rounded count published in the KD papers' tables
#        in millions, or None where the brief gives none)
COUNTS = {
    "resnet8": (83_892, None),
    "resnet14": (181_108, None),
    "resnet20": (278_324, 0.28),
    "resnet32": (472_756, None),
    "resnet44": (667_188, None),
    "resnet56": (861_620, 0.86),
    "resnet110": (1_736_564, 1.74),
    "resnet8x4": (1_233_540, 1.23),
    "resnet32x4": (7_433_860, 7.43),
    "wrn_16_1": (180_916, None),
    "wrn_16_2": (703_284, 0.70),
    "wrn_40_1": (569_780, None),
    "wrn_40_2": (2_255_156, 2.26),
    "vgg8": (3_965_028, 3.96),
    "vgg11": (9_277_284, None),
    "vgg13": (9_462_180, 9.46),
    "mobilenetv2": (812_836, 0.81),
    "shufflenetv1": (949_258, 0.95),
    "shufflenetv2": (1_355_528, 1.36),
}
# Number of state_dict entries (parameters and buffers) of the reference definitions.
N_KEYS = {
    "resnet8": 56,
    "resnet14": 92,
    "resnet20": 128,
    "resnet32": 200,
    "resnet44": 272,
    "resnet56": 344,
    "resnet110": 668,
    "resnet8x4": 62,
    "resnet32x4": 206,
    "wrn_16_1": 82,
    "wrn_16_2": 83,
    "wrn_40_1": 226,
    "wrn_40_2": 227,
    "vgg8": 37,
    "vgg11": 58,
    "vgg13": 72,
    "mobilenetv2": 320,
    "shufflenetv1": 296,
    "shufflenetv2": 338,
}


def _make(name, num_classes=100, seed=0):
    torch.manual_seed(seed)
    return models.create(name, SHAPE, num_classes)


def test_zoo_is_registered():
    assert set(COUNTS) <= set(models.names())
    from hpo_kd.models import cifar

    assert set(cifar.CIFAR_MODELS) == set(COUNTS)
    for name in COUNTS:
        doc = models.MODELS.get(name).__doc__
        assert doc and "\n" not in doc.strip()


@pytest.mark.parametrize("name", list(COUNTS))
def test_parameter_count_matches_reference(name):
    exact, published = COUNTS[name]
    m = _make(name)
    n = models.count_parameters(m)
    assert n == exact
    assert len(m.state_dict()) == N_KEYS[name]
    if published is not None:
        if name == "vgg8":
            # 3.965028M: the published tables print 3.96M (truncated, not rounded).
            assert int(n / 1e4) / 100 == published
        else:
            assert round(n / 1e6, 2) == published


@pytest.mark.parametrize("name", list(COUNTS))
def test_forward_gives_logits(name):
    m = _make(name).eval()
    with torch.no_grad():
        out = m(torch.randn(2, *SHAPE))
    assert out.shape == (2, 100)
    assert torch.isfinite(out).all()


def test_training_mode_forward_and_backward():
    m = _make("resnet8", num_classes=10).train()
    out = m(torch.randn(2, *SHAPE))
    out.sum().backward()
    assert out.shape == (2, 10)
    assert m.conv1.weight.grad is not None


def test_needs_images():
    with pytest.raises(UserError):
        models.create("resnet8", (3, 40), 10)


def _shapes(name):
    return {k: tuple(v.shape) for k, v in _make(name).state_dict().items()}


def test_resnet_keys_follow_reference():
    sd = _shapes("resnet8x4")
    assert sd["conv1.weight"] == (32, 3, 3, 3)
    assert sd["bn1.running_mean"] == (32,)
    assert sd["bn1.num_batches_tracked"] == ()
    assert sd["layer1.0.conv1.weight"] == (64, 32, 3, 3)
    assert sd["layer1.0.downsample.0.weight"] == (64, 32, 1, 1)
    assert sd["layer1.0.downsample.1.weight"] == (64,)
    assert sd["layer3.0.bn2.running_var"] == (256,)
    assert sd["fc.weight"] == (100, 256) and sd["fc.bias"] == (100,)
    # resnet8 (16-16-32-64) has no projection in its first stage.
    small = _shapes("resnet8")
    assert "layer1.0.downsample.0.weight" not in small
    assert small["layer2.0.downsample.0.weight"] == (32, 16, 1, 1)


def test_wrn_keys_follow_reference():
    sd = _shapes("wrn_40_2")
    assert sd["conv1.weight"] == (16, 3, 3, 3)
    assert sd["block1.layer.0.bn1.weight"] == (16,)
    assert sd["block1.layer.0.conv1.weight"] == (32, 16, 3, 3)
    assert sd["block1.layer.0.convShortcut.weight"] == (32, 16, 1, 1)
    assert "block1.layer.1.convShortcut.weight" not in sd
    assert sd["block3.layer.5.conv2.weight"] == (128, 128, 3, 3)
    assert sd["bn1.weight"] == (128,)
    assert sd["fc.weight"] == (100, 128)
    assert "block1.layer.0.convShortcut.weight" not in _shapes("wrn_16_1")


def test_vgg_mobilenet_shufflenet_keys_follow_reference():
    vgg = _shapes("vgg13")
    assert vgg["block0.0.weight"] == (64, 3, 3, 3) and vgg["block0.0.bias"] == (64,)
    assert vgg["block0.1.running_mean"] == (64,)
    assert vgg["block0.3.weight"] == (64, 64, 3, 3) and vgg["block0.4.weight"] == (64,)
    assert "block0.5.weight" not in vgg
    assert vgg["classifier.weight"] == (100, 512)
    mv2 = _shapes("mobilenetv2")
    assert mv2["conv1.0.weight"] == (16, 3, 3, 3)
    assert mv2["blocks.0.0.conv.0.weight"] == (16, 16, 1, 1)
    assert mv2["blocks.1.0.conv.3.weight"] == (48, 1, 3, 3)  # 8 channels x 6, depthwise
    assert mv2["blocks.6.0.conv.7.weight"] == (160,)
    assert mv2["conv2.0.weight"] == (1280, 160, 1, 1)
    assert mv2["classifier.0.weight"] == (100, 1280)
    v1 = _shapes("shufflenetv1")
    assert v1["conv1.weight"] == (24, 3, 1, 1)
    assert v1["layer1.0.conv1.weight"] == (54, 24, 1, 1)
    assert v1["layer1.0.conv3.weight"] == (216, 18, 1, 1)
    assert v1["linear.weight"] == (100, 960)
    v2 = _shapes("shufflenetv2")
    assert v2["layer1.0.conv5.weight"] == (58, 58, 1, 1)
    assert v2["layer2.7.bn3.weight"] == (116,)
    assert v2["conv2.weight"] == (1024, 464, 1, 1)
    assert v2["linear.weight"] == (100, 1024)


# ---------------------------------------------------------------------------- load_weights


@pytest.fixture(scope="module")
def trained():
    """A resnet8 with non-trivial BatchNorm statistics, and its outputs on a fixed input."""
    m = _make("resnet8", num_classes=10, seed=1)
    with torch.no_grad():
        m.train()
        m(torch.randn(4, *SHAPE))  # moves the running statistics
        m.eval()
        x = torch.randn(2, *SHAPE)
        return m, x, m(x)


def _fresh_outputs(path, x):
    fresh = _make("resnet8", num_classes=10, seed=2).eval()
    info = load_weights(fresh, path)
    with torch.no_grad():
        return info, fresh(x)


@pytest.mark.parametrize("wrap", ["raw", "model", "state_dict", "net", "module_prefix", "nested_prefix"])
def test_load_weights_round_trip(tmp_path, trained, wrap):
    m, x, ref = trained
    sd = m.state_dict()
    if wrap in ("module_prefix", "nested_prefix"):
        sd = {"module." + k: v for k, v in sd.items()}
    obj = {
        "raw": sd,
        "module_prefix": sd,
        "model": {"model": sd, "epoch": 240, "accuracy": 0.5},
        "state_dict": {"state_dict": sd},
        "net": {"net": sd, "acc": 1.0},
        "nested_prefix": {"model": sd},
    }[wrap]
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    info, out = _fresh_outputs(path, x)
    assert torch.equal(out, ref)
    assert info["keys"] == len(m.state_dict())
    assert info["path"] == str(path)
    assert info["sha256"] == file_hash(path) and len(info["sha256"]) == 16
    int(info["sha256"], 16)


def test_file_hash_depends_on_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"teacher")
    b.write_bytes(b"teacher!")
    assert file_hash(a) == file_hash(tmp_path / "a") != file_hash(b)
    assert file_hash(a) == hashlib.sha256(b"teacher").hexdigest()[:16]


def test_mismatch_names_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "r8.pth"
    torch.save({"model": _make("resnet8").state_dict()}, path)
    target = _make("resnet14")
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(UserError) as e:
        load_weights(target, path)
    msg = str(e.value)
    assert str(path) in msg
    assert "36 missing keys" in msg  # resnet14 has one more block (12 entries) in each stage
    assert "layer1.1.conv1.weight" in msg and "(+26 more)" in msg
    assert "0 unexpected keys" in msg
    # Nothing was loaded into the model.
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())

    with pytest.raises(UserError) as e:
        load_weights(_make("resnet8"), _save(tmp_path, _make("resnet14").state_dict()))
    msg = str(e.value)
    assert "0 missing keys" in msg and "36 unexpected keys" in msg
    assert "layer1.1.bn2.running_mean" in msg and "(+26 more)" in msg


def _save(tmp_path, obj, name="x.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_shape_mismatch_is_a_user_error(tmp_path):
    path = _save(tmp_path, _make("resnet8", num_classes=10).state_dict())
    with pytest.raises(UserError) as e:
        load_weights(_make("resnet8", num_classes=100), path)
    msg = str(e.value)
    assert "shape mismatches" in msg and "fc.weight" in msg and "(10, 64)" in msg


def test_missing_or_unreadable_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserError) as e:
        load_weights(_make("resnet8"), missing)
    assert str(missing) in str(e.value)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError) as e:
        load_weights(_make("resnet8"), junk)
    assert str(junk) in str(e.value)
    with pytest.raises(UserError) as e:
        load_weights(_make("resnet8"), _save(tmp_path, {"epoch": 3, "optimizer": {}}))
    assert "'epoch'" in str(e.value)


def test_checkpoint_without_batch_counters_loads(tmp_path, trained):
    # Checkpoints saved before PyTorch 0.4.1 lack `num_batches_tracked`; strict loading accepts them.
    m, x, ref = trained
    sd = {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    info, out = _fresh_outputs(_save(tmp_path, {"state_dict": sd}), x)
    assert info["keys"] == len(sd) and torch.equal(out, ref)
