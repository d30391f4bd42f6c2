"""The ``perf:`` speed options on CPU: each changes how the step runs, never what it computes."""

import copy

import pytest
import torch

from srdistill.models.backbones.edsr import EDSR
from srdistill.models.checkpoint import student_weights
from srdistill.module import DistillationModule
from srdistill.training import perf
from srdistill.training.perf import SpeedOptions
from tests.unit.test_module import RandomPairs, fit, make_module

CONV_OWNERS = ("student", "teacher", "discriminator")


def pair(teacher_autocast=None, **speed_options) -> tuple[DistillationModule, DistillationModule]:
    """The default module and one with the speed options, holding identical weights; the fast
    one's ``SpeedOptions`` callback (``fast.speed``) set up as a Trainer sets it up."""
    torch.manual_seed(0)
    default = make_module()
    torch.manual_seed(0)
    fast = make_module(teacher_autocast=teacher_autocast)
    fast.speed = SpeedOptions(**speed_options)
    fast.speed.setup(None, fast, "fit")
    return default, fast


def step_layout(module: DistillationModule, data: dict) -> dict:
    """The batch as the training step sees it (after the module's speed callback, if any)."""
    data = dict(data)
    if getattr(module, "speed", None) is not None:
        module.speed.on_train_batch_start(None, module, data, 0)
    return data


def fit_fast(module: DistillationModule, steps: int):
    return fit(module, steps=steps, callbacks=[module.speed])


def batch() -> dict[str, torch.Tensor]:
    items = [RandomPairs()[i] for i in range(2)]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def loss_and_student_grads(module: DistillationModule, data: dict) -> tuple:
    torch.manual_seed(1)  # the contrastive term draws its patches at random
    total, _ = module.loss(module._context(step_layout(module, data)))
    total.backward()
    return total.detach(), [p.grad.clone() for p in module.student.parameters()]


def test_channels_last_puts_every_conv_weight_and_the_batch_in_nhwc():
    _, fast = pair(channels_last=True)
    for owner in CONV_OWNERS:
        weights = [p for p in getattr(fast, owner).parameters() if p.dim() == 4]
        assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
        assert not all(p.is_contiguous() for p in weights)  # NHWC, not both by accident
    moved = step_layout(fast, batch())
    assert all(t.is_contiguous(memory_format=torch.channels_last) for t in moved.values())
    assert not moved["lq"].is_contiguous()
    validated = batch()  # validation batches too, as the module's batch hook did for every loader
    fast.speed.on_validation_batch_start(None, fast, validated, 0)
    assert all(t.is_contiguous(memory_format=torch.channels_last) for t in validated.values())


def test_channels_last_step_computes_the_default_loss_and_gradients():
    default, fast = pair(channels_last=True)
    data = batch()
    loss, grads = loss_and_student_grads(default, data)
    fast_loss, fast_grads = loss_and_student_grads(fast, data)
    torch.testing.assert_close(fast_loss, loss, rtol=1e-5, atol=1e-6)
    for fast_grad, grad in zip(fast_grads, grads, strict=True):
        torch.testing.assert_close(fast_grad, grad, rtol=1e-4, atol=1e-6)
    sr_t, _ = fast.teacher_forward(data["lq"])
    torch.testing.assert_close(sr_t, default.teacher_forward(data["lq"])[0])


def test_channels_last_survives_training_and_checkpoints_keep_their_keys():
    default, fast = pair(channels_last=True)
    fit_fast(fast, steps=2)
    conv = fast.student.conv_first.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert list(fast.state_dict()) == list(default.state_dict())


def test_teacher_bf16_autocast_returns_float32_close_to_the_float32_teacher():
    default, fast = pair(teacher_autocast="bf16")
    lq = batch()["lq"]
    sr, feats = default.teacher_forward(lq, ["body.0"])
    sr_bf16, feats_bf16 = fast.teacher_forward(lq, ["body.0"])
    assert sr_bf16.dtype == feats_bf16["body.0"].dtype == torch.float32
    assert not torch.equal(sr_bf16, sr)  # it did run in bf16 (8 mantissa bits)
    for low, full in ((sr_bf16, sr), (feats_bf16["body.0"], feats["body.0"])):
        assert (low - full).abs().max() <= 2e-2 * full.abs().max()


def test_teacher_bf16_autocast_trains_with_float32_losses():
    _, fast = pair(teacher_autocast="bf16", channels_last=True)
    seen = []
    forward = fast.teacher_forward
    fast.teacher_forward = lambda lq, taps=(): (
        seen.append(forward(lq, taps)[0].dtype) or forward(lq, taps)
    )
    fit_fast(fast, steps=2)
    assert seen == [torch.float32, torch.float32]
    assert all(torch.isfinite(p).all() for p in fast.student.parameters())


def test_compile_in_place_keeps_keys_and_a_deep_copy_runs_its_own_weights():
    model = EDSR(scale=2, num_feat=8, num_block=1)
    x = torch.rand(1, 3, 8, 8)
    keys = list(model.state_dict())
    perf.compile_in_place(model, "eager")
    assert list(model.state_dict()) == keys
    copied = copy.deepcopy(model)
    with torch.no_grad():
        for p in copied.parameters():
            p.mul_(-1.0)
    sr, feats = copied.forward_intermediates(x, ["body.0"])
    torch.testing.assert_close(sr, copied(x))
    assert not torch.allclose(sr, model(x))  # the copy's weights, not the original's
    perf.uncompile(model)
    assert model._compiled_call_impl is None and "forward_intermediates" not in vars(model)


def test_compiled_taps_match_eager_without_recompiling_per_step_and_uncompile_undoes_it():
    from torch._dynamo.utils import counters

    from srdistill.models.taps import forward_replacing, forward_with_taps

    torch.manual_seed(0)
    model = EDSR(scale=2, num_feat=4, num_block=1)
    eager = copy.deepcopy(model)
    perf.compile_in_place(model, "eager")
    mixed, hooked = ["body", "body.0.conv1", "upsample"], ["body.0.conv2"]  # named, module paths
    graphs = []
    for _ in range(2):
        x, feature = torch.rand(1, 3, 8, 8), torch.randn(1, 4, 8, 8)
        for taps in (mixed, hooked):
            out, feats = forward_with_taps(model, x, taps)
            expected_out, expected = forward_with_taps(eager, x, taps)
            assert torch.equal(out, expected_out)
            assert all(torch.equal(feats[t], expected[t]) for t in taps)
        replaced = forward_replacing(model, x, "body.0.conv2", feature)
        assert torch.equal(replaced, forward_replacing(eager, x, "body.0.conv2", feature))
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] == graphs[-1]  # each tap set compiled once, not once per step
    assert all(not m._forward_hooks for m in model.modules())
    perf.uncompile(model)
    assert model._compiled_call_impl is None and "forward_intermediates" not in vars(model)
    assert torch.equal(forward_with_taps(model, x, hooked)[1]["body.0.conv2"], expected[hooked[0]])


def test_compiled_training_matches_eager_and_leaves_plain_modules():
    default, fast = pair(compile_backend="aot_eager")
    compiled_during_fit = []
    original = fast.training_step

    def training_step(batch, batch_idx):
        compiled_during_fit.append(fast.student._compiled_call_impl is not None)
        return original(batch, batch_idx)

    fast.training_step = training_step
    data = batch()
    torch.manual_seed(3)
    fit(default, steps=2)
    torch.manual_seed(3)
    fit_fast(fast, steps=2)
    assert compiled_during_fit == [True, True]
    for network in (fast.student, fast.teacher):
        assert network._compiled_call_impl is None  # eager again for validation and export
    state = fast.state_dict()
    assert not any("_orig_mod" in key for key in state)
    assert list(state) == list(default.state_dict())
    exported = student_weights(state, use_ema=False, path="run.ckpt")
    fresh = EDSR(scale=2, num_feat=8, num_block=1)
    fresh.load_state_dict(exported, strict=True)
    torch.testing.assert_close(fresh(data["lq"]), fast.export_student()(data["lq"]))
    for p_fast, p_default in zip(
        fast.student.parameters(), default.student.parameters(), strict=True
    ):
        torch.testing.assert_close(p_fast, p_default, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_inductor_forward_matches_eager():
    pytest.importorskip("torch._inductor")
    model = EDSR(scale=2, num_feat=8, num_block=1).eval()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        perf.compile_in_place(model, "inductor")
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
