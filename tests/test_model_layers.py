"""Building blocks of the PLN network against hand-computed or brute-force values."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from pln.config import ModelConfig
from pln.errors import DataError
from pln.geometry import valid_mask
from pln.model.map2d import build_map, build_map_fast
from pln.model.mapconv import MapConvNet, layer_paddings
from pln.model.query import QueryEncoder
from pln.model.stage import CFM, Fusion, Predictor, UpsamplingConnection, merge_max, normalize_channels
from pln.model.video import VideoEncoder, pool_clips, sinusoidal_encoding


def upper_mask(n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool).triu()


# ---------------------------------------------------------------------------- 2D map


@pytest.mark.parametrize("n", [5, 32])
def test_build_map_matches_brute_force(n):
    torch.manual_seed(0)
    clips = torch.randn(2, 3, n)
    mask = valid_mask(n)
    out = build_map(clips, mask)
    expected = torch.zeros(2, 3, n, n)
    for i in range(n):
        for j in range(i, n):
            if mask[i, j]:
                expected[:, :, i, j] = clips[:, :, i : j + 1].max(dim=2).values
    assert out.shape == (2, 3, n, n)
    assert torch.equal(out, expected)


def test_build_map_hand_values_and_gradient():
    clips = torch.tensor([[[1.0, 3.0, 2.0]]], requires_grad=True)
    out = build_map(clips, upper_mask(3))
    assert out[0, 0].tolist() == [[1, 3, 3], [0, 3, 3], [0, 0, 2]]
    out.sum().backward()
    # clip 0 is the max of one cell, clip 1 of four, clip 2 of one
    assert clips.grad[0, 0].tolist() == [1.0, 4.0, 1.0]


def _map_and_grad(fn, clips, mask, grad):
    x = clips.clone().requires_grad_(True)
    out = fn(x, mask)
    out.backward(grad)
    return out.detach(), x.grad


@pytest.mark.parametrize("n", [1, 2, 7, 16, 32])
@pytest.mark.parametrize("ties", ["none", "zeros", "levels"])
def test_build_map_fast_matches_reference_values_and_gradient(n, ties):
    """Same values (bit for bit) and the gradient of autograd's reference (1e-5), also where clips
    tie: exact zeros (ReLU'd features) and a few repeated levels, where autograd splits the
    gradient of each torch.maximum in halves."""
    gen = torch.Generator().manual_seed(n)
    clips = torch.randn(3, 4, n, generator=gen)
    if ties == "zeros":
        clips = clips.clamp(min=0)
    elif ties == "levels":
        clips = torch.randint(0, 3, (3, 4, n), generator=gen).to(torch.float32)
    mask = valid_mask(n)
    grad = torch.randn(3, 4, n, n, generator=gen)
    ref_out, ref_grad = _map_and_grad(build_map, clips, mask, grad)
    out, g = _map_and_grad(build_map_fast, clips, mask, grad)
    assert torch.equal(out, ref_out)
    assert torch.allclose(g, ref_grad, atol=1e-5, rtol=1e-5)


def test_build_map_fast_hand_gradient_with_a_tie():
    """Clips [2, 2, 1] over the full upper triangle: the span (0, 1) ties, so each of clips 0
    and 1 gets half of it; the span (0, 2) is max(run (0, 1), c_2) = the tie again, split too.
    Clip 0: 1 (own cell) + 1/2 + 1/2 = 2; clip 1: 1 + 1/2 + 1/2 + 1 (span (1, 2)) = 3; clip 2: 1."""
    clips = torch.tensor([[[2.0, 2.0, 1.0]]], requires_grad=True)
    build_map_fast(clips, upper_mask(3)).sum().backward()
    assert clips.grad[0, 0].tolist() == [2.0, 3.0, 1.0]


def test_model_map_fast_gives_the_reference_gradients():
    """A two-stage model's parameter gradients with ``model.map_fast`` on and off agree."""
    from pln.model import PLN

    grads = []
    for fast in (True, False):
        torch.manual_seed(0)
        cfg = ModelConfig(feature_dim=8, num_units=16, hidden=8, word_dim=6, lstm_layers=1,
                          clips=[4, 16], conv_channels=8, map_fast=fast)
        model = PLN(cfg)
        gen = torch.Generator().manual_seed(1)
        out = model(torch.randn(2, 16, 8, generator=gen), torch.randn(2, 5, 6, generator=gen), torch.tensor([5, 3]))
        sum(logit.sum() for logit in out.logits).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for key, value in grads[1].items():
        assert torch.allclose(grads[0][key], value, atol=1e-5, rtol=1e-4), key


def test_normalize_channels_is_torch_normalize():
    """Values and gradients of F.normalize(x, dim=1), and a finite zero gradient at x = 0."""
    import torch.nn.functional as F

    x = torch.randn(3, 5, 4, 4, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 5, 4, 4, dtype=torch.float64)
    ours = normalize_channels(x)
    (gx,) = torch.autograd.grad(ours, x, g)
    ref = F.normalize(x, dim=1)
    (gref,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(ours, ref, atol=1e-12) and torch.allclose(gx, gref, atol=1e-10)
    zero = torch.zeros(1, 3, 2, 2, requires_grad=True)
    normalize_channels(zero).sum().backward()
    assert torch.equal(zero.grad, torch.full_like(zero, 1e12))  # d(x / eps)/dx, as F.normalize
    assert normalize_channels(zero).abs().sum() == 0


# ---------------------------------------------------------------------------- video


def test_pool_clips_hand():
    x = torch.arange(8.0).view(1, 8, 1).repeat(1, 1, 2)
    x[..., 1] *= 10
    out = pool_clips(x, 2)  # kernel = stride = 4
    assert out.shape == (1, 2, 2)
    assert torch.allclose(out[0], torch.tensor([[1.5, 5.5], [15.0, 55.0]]))
    assert torch.allclose(pool_clips(x, 8), x.transpose(1, 2))
    with pytest.raises(DataError):
        pool_clips(x, 3)


def test_sinusoidal_encoding_values():
    pe = sinusoidal_encoding(3, 4)
    assert pe.shape == (3, 4)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert torch.allclose(pe[2], torch.tensor([math.sin(2), math.cos(2), math.sin(2 / 100), math.cos(2 / 100)]))


@pytest.mark.parametrize("pe", [False, True])
def test_video_encoder_fc_relu_and_position(pe):
    cfg = ModelConfig(feature_dim=5, hidden=6, num_units=4, positional_encoding=pe)
    enc = VideoEncoder(cfg)
    x = torch.randn(2, 4, 5)
    expected = torch.relu(x @ enc.fc.weight.T + enc.fc.bias)
    if pe:
        expected = expected + sinusoidal_encoding(4, 6)
    assert torch.allclose(enc(x), expected, atol=1e-6)


def test_video_encoder_position_before_fc():
    cfg = ModelConfig(feature_dim=5, hidden=6, num_units=4, positional_encoding=True,
                      positional_encoding_place="before_fc")
    enc = VideoEncoder(cfg)
    x = torch.randn(1, 4, 5)
    expected = torch.relu((x + sinusoidal_encoding(4, 5)) @ enc.fc.weight.T + enc.fc.bias)
    assert torch.allclose(enc(x), expected, atol=1e-6)


def test_video_encoder_wrong_feature_dim():
    enc = VideoEncoder(ModelConfig(feature_dim=5, hidden=6, num_units=4))
    with pytest.raises(DataError, match="feature_dim"):
        enc(torch.randn(1, 4, 7))


# ---------------------------------------------------------------------------- query


def test_query_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = QueryEncoder(ModelConfig(word_dim=4, hidden=8, lstm_layers=3)).eval()
    sentence = torch.randn(5, 4)
    short = torch.zeros(2, 5, 4)
    short[0] = sentence
    short[1, :2] = torch.randn(2, 4)
    padded = torch.randn(3, 9, 4) * 10  # garbage after the real words
    padded[0, :5] = sentence
    a = enc(short, torch.tensor([5, 2]))
    b = enc(padded, torch.tensor([5, 9, 1]))
    assert a.shape == (2, 8) and b.shape == (3, 8)
    assert torch.allclose(a[0], b[0], atol=1e-6)
    # the vector is the top layer's output at the last real word
    out, _ = enc.lstm(sentence[None, :3])
    assert torch.allclose(enc(padded[:1], torch.tensor([3])), out[:, 2], atol=1e-6)


def test_query_encoder_bad_lengths():
    enc = QueryEncoder(ModelConfig(word_dim=4, hidden=8))
    with pytest.raises(DataError):
        enc(torch.zeros(2, 3, 4), torch.tensor([3, 0]))
    with pytest.raises(DataError):
        enc(torch.zeros(2, 3, 4), torch.tensor([4, 1]))


# ---------------------------------------------------------------------------- MapConvNet


def test_layer_paddings():
    assert layer_paddings(5, 8, "first_layer") == [16, 0, 0, 0, 0, 0, 0, 0]
    assert layer_paddings(9, 4, "first_layer") == [16, 0, 0, 0]
    assert layer_paddings(5, 2, "same") == [2, 2]


def _ones_net(kernel: int, layers: int, padding: str, count_norm: bool = True) -> MapConvNet:
    net = MapConvNet(1, layers, kernel, padding, count_norm)
    for conv in net.convs:
        nn.init.ones_(conv.weight)
        nn.init.zeros_(conv.bias)
    return net


def test_mapconv_count_norm_hand_case():
    # all-ones input, ones 3x3 kernel: each output is (#in-bounds cells) / (#valid cells) under it
    net = _ones_net(3, 1, "same")
    out = net(torch.ones(1, 1, 3, 3), upper_mask(3))[0, 0]
    expected = torch.tensor([[4 / 3, 6 / 5, 4 / 4], [0, 9 / 6, 6 / 5], [0, 0, 4 / 3]])
    assert torch.allclose(out, expected)
    # a masked input: the sum over valid cells divided by their count is 1 at every valid cell
    mask = valid_mask(20)
    out = _ones_net(5, 2, "first_layer")(mask.float()[None, None], mask)[0, 0]
    assert out.shape == (20, 20)
    assert torch.allclose(out, mask.float(), atol=1e-6)


def test_mapconv_without_count_norm():
    out = _ones_net(3, 1, "same", count_norm=False)(torch.ones(1, 1, 3, 3), upper_mask(3))[0, 0]
    assert torch.equal(out, torch.tensor([[4.0, 6, 4], [0, 9, 6], [0, 0, 4]]))


@pytest.mark.parametrize("count_norm", [True, False])
def test_unit_gain_init_keeps_the_second_moment_at_full_windows(count_norm):
    # E[out^2] = C var(w) q / (2 n) per count-normalised layer (n valid inputs under the kernel,
    # q the input's second moment): unit_gain's var(w) = 2 K^2 / C makes it q where n = K^2;
    # without count normalisation var(w) = 2 / (C K^2) (He-normal) does the same.
    torch.manual_seed(0)
    c, k, n = 64, 3, 24
    net = MapConvNet(c, 1, k, "same", count_norm=count_norm, init="unit_gain")
    w = net.convs[0].weight.detach()
    expected_var = 2 * k * k / c if count_norm else 2 / (c * k * k)
    assert abs(w.var().item() / expected_var - 1) < 0.05
    assert torch.equal(net.convs[0].bias.detach(), torch.zeros(c))
    mask = torch.ones(n, n, dtype=torch.bool)
    x = torch.randn(8, c, n, n) * 0.3  # q = 0.09
    with torch.no_grad():
        out = net(x, mask)[:, :, 1:-1, 1:-1]  # cells whose 3x3 window is inside the map
    assert abs(out.pow(2).mean().item() / 0.09 - 1) < 0.1


def test_pytorch_init_shrinks_a_count_normalised_layer():
    # PyTorch's default var(w) = 1 / (3 C K^2): E[out^2] / q = 1 / (6 K^4) at full windows, the
    # scale hole the unit_gain init removes (the bias, a constant per channel, is zeroed here)
    torch.manual_seed(0)
    c, k, n = 64, 3, 24
    net = MapConvNet(c, 1, k, "same", count_norm=True)
    nn.init.zeros_(net.convs[0].bias)
    x = torch.randn(8, c, n, n)
    with torch.no_grad():
        out = net(x, torch.ones(n, n, dtype=torch.bool))[:, :, 1:-1, 1:-1]
    assert abs(out.pow(2).mean().item() * 6 * k**4 - 1) < 0.1


def test_unknown_conv_init_is_refused():
    with pytest.raises(ValueError, match="init"):
        MapConvNet(4, 1, 3, init="xavier")


def reference_mapconv(x: np.ndarray, mask: np.ndarray, weights, biases, paddings) -> np.ndarray:
    """Per-cell loops: ReLU(conv) times 1/(valid cells under the kernel), mask passed on as count > 0."""
    cur_mask = mask.astype(np.float64)
    for w, b, p in zip(weights, biases, paddings):
        k = w.shape[-1]
        xp = np.pad(x, ((0, 0), (p, p), (p, p)))
        mp = np.pad(cur_mask, p)
        size = xp.shape[1] - k + 1
        y = np.zeros((w.shape[0], size, size))
        count = np.zeros((size, size))
        for r in range(size):
            for c in range(size):
                y[:, r, c] = np.einsum("oikl,ikl->o", w, xp[:, r : r + k, c : c + k]) + b
                count[r, c] = mp[r : r + k, c : c + k].sum()
        weight = np.where(count > 0, 1.0 / np.maximum(count, 1), 0.0)
        x = np.maximum(y, 0) * weight
        cur_mask = (count > 0).astype(np.float64)
    return x * mask


@pytest.mark.parametrize("padding", ["first_layer", "same"])
def test_mapconv_matches_loop_reference(padding):
    torch.manual_seed(1)
    n, c, k, layers = 7, 2, 3, 3
    net = MapConvNet(c, layers, k, padding)
    mask = upper_mask(n) & ~torch.eye(n, dtype=torch.bool).roll(1, 1)  # an irregular mask
    x = torch.randn(1, c, n, n) * mask
    out = net(x, mask)[0].detach().numpy()
    ref = reference_mapconv(x[0].numpy().astype(np.float64), mask.numpy(),
                            [conv.weight.detach().double().numpy() for conv in net.convs],
                            [conv.bias.detach().double().numpy() for conv in net.convs],
                            layer_paddings(k, layers, padding))
    assert out.shape == (c, n, n)
    assert np.abs(ref).max() > 1e-3
    assert np.allclose(out, ref, atol=1e-5)


# ---------------------------------------------------------------------------- fusion, CFM, UC, predictor


def test_fusion_is_normalised_product_masked():
    torch.manual_seed(0)
    fusion = Fusion(hidden=3, channels=4)
    mask = upper_mask(3)
    map2d = build_map(torch.randn(2, 3, 3), mask)
    f_s = torch.randn(2, 3)
    out = fusion(map2d, f_s, mask)
    vis = torch.einsum("oi,bixy->boxy", fusion.vis_conv.weight[:, :, 0, 0], map2d) + fusion.vis_conv.bias[:, None, None]
    prod = vis * (f_s @ fusion.tex_linear.weight.T + fusion.tex_linear.bias)[:, :, None, None]
    expected = prod / prod.norm(dim=1, keepdim=True) * mask
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(out.norm(dim=1)[:, mask], torch.ones(2, int(mask.sum())), atol=1e-5)


def test_cfm_hand_values():
    cfm = CFM(hidden=2, channels=2)
    with torch.no_grad():
        cfm.gate.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        cfm.gate.bias.copy_(torch.tensor([0.0, -1.0]))
    prev = torch.zeros(1, 2, 2, 2)
    prev[0, :, 0, 0] = torch.tensor([0.5, 0.1])
    prev[0, :, 0, 1] = torch.tensor([0.2, 0.3])
    prev[0, :, 1, 0] = torch.tensor([9.0, 9.0])  # invalid cell: ignored by the max
    clips = torch.tensor([[[1.0, -2.0], [4.0, 0.5]]])  # [B=1, H=2, N=2]
    out = cfm(clips, prev, upper_mask(2))
    h = [0.5, 0.3]
    sig = lambda v: 1 / (1 + math.exp(-v))
    expected = [[1.0 * sig(h[0] * 1.0), -2.0 * sig(h[0] * -2.0)],
                [4.0 * sig(2 * h[1] * 4.0 - 1), 0.5 * sig(2 * h[1] * 0.5 - 1)]]
    assert torch.allclose(out[0], torch.tensor(expected), atol=1e-6)


def test_cfm_projects_when_widths_differ():
    cfm = CFM(hidden=3, channels=5)
    out = cfm(torch.randn(2, 3, 4), torch.rand(2, 5, 2, 2), upper_mask(2))
    assert out.shape == (2, 3, 4)


def _identity_conv(conv: nn.Conv2d) -> None:
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(conv.out_channels):
            conv.weight[c, c, 1, 1] = 1.0
        conv.bias.zero_()


def test_upsampling_connection_nearest_and_merge():
    uc = UpsamplingConnection(2, n_prev=2, n=8)
    assert uc.num_blocks == 2
    for m in uc.blocks:
        if isinstance(m, nn.Conv2d):
            _identity_conv(m)
    prev = torch.rand(1, 2, 2, 2)
    up = uc(prev)
    assert up.shape == (1, 2, 8, 8)
    idx = torch.arange(8) // 4
    assert torch.allclose(up, prev[:, :, idx][:, :, :, idx])
    # merge: element-wise max, then zero at the invalid cells
    mask = upper_mask(8)
    fused = torch.rand(1, 2, 8, 8) * mask
    g = merge_max(fused, up, mask)
    assert torch.equal(g, torch.maximum(fused, up) * mask)
    assert g[0, 0, 5, 2] == 0 and up[0, 0, 5, 2] > 0
    assert g[0, 1, 0, 7] == max(fused[0, 1, 0, 7], up[0, 1, 0, 7])


def test_upsampling_connection_equal_sizes_is_identity():
    uc = UpsamplingConnection(3, n_prev=4, n=4)
    assert uc.num_blocks == 0 and len(list(uc.parameters())) == 0
    prev = torch.rand(1, 3, 4, 4)
    assert torch.equal(uc(prev), prev)
    with pytest.raises(ValueError):
        UpsamplingConnection(3, n_prev=4, n=12)


def test_upsampling_connection_relu_is_a_choice():
    prev = -torch.rand(1, 2, 2, 2) - 0.1  # all negative
    outs = {}
    for relu in (True, False):
        uc = UpsamplingConnection(2, n_prev=2, n=4, relu=relu)
        for m in uc.blocks:
            if isinstance(m, nn.Conv2d):
                _identity_conv(m)
        outs[relu] = uc(prev)
    idx = torch.arange(4) // 2
    assert torch.equal(outs[True], torch.zeros(1, 2, 4, 4))  # the ReLU clips the negative map
    assert torch.allclose(outs[False], prev[:, :, idx][:, :, :, idx])


def test_upsampling_connection_extra_blocks_keep_the_size():
    uc = UpsamplingConnection(2, n_prev=4, n=8, blocks=2)
    assert uc.num_blocks == 2
    assert isinstance(uc.blocks[0], nn.Upsample) and isinstance(uc.blocks[5], nn.Identity)
    for m in uc.blocks:
        if isinstance(m, nn.Conv2d):
            _identity_conv(m)
    prev = torch.rand(1, 2, 4, 4)
    idx = torch.arange(8) // 2
    assert torch.allclose(uc(prev), prev[:, :, idx][:, :, :, idx])
    # the parameter names are those of the default layout with the same number of blocks
    assert uc.state_dict().keys() == UpsamplingConnection(2, n_prev=4, n=16).state_dict().keys()
    with pytest.raises(ValueError):
        UpsamplingConnection(2, n_prev=4, n=16, blocks=1)


def test_upsampling_connection_equal_sizes_with_convs():
    uc = UpsamplingConnection(3, n_prev=4, n=4, blocks=1)
    assert uc.num_blocks == 1 and len(list(uc.parameters())) == 4
    assert uc(torch.rand(2, 3, 4, 4)).shape == (2, 3, 4, 4)


def test_uc_layout_from_the_config():
    from pln.config import ModelConfig
    from pln.errors import ConfigError

    assert ModelConfig(clips=[32, 128]).uc_layout(1) == (2, 2)
    assert ModelConfig(clips=[32, 64, 128]).uc_layout(2) == (1, 1)
    assert ModelConfig(clips=[32, 32]).uc_layout(1) == (0, 0)
    assert ModelConfig(clips=[32, 32], uc_same_size="convs").uc_layout(1) == (1, 0)
    assert ModelConfig(clips=[32, 64], uc_blocks=2).uc_layout(1) == (2, 1)  # section 4.1.3's "two blocks"
    with pytest.raises(ConfigError, match=r"model\.uc_blocks must be in \[2, 8\]"):
        ModelConfig(clips=[32, 128], uc_blocks=1).validate()


def test_cfm_without_projection_needs_equal_widths():
    from pln.config import ModelConfig
    from pln.errors import ConfigError

    assert isinstance(CFM(4, 4, "none").proj, nn.Identity)
    with pytest.raises(ValueError):
        CFM(3, 5, "none")
    with pytest.raises(ConfigError, match=r"model\.cfm_projection 'none' needs model\.conv_channels == model\.hidden"):
        ModelConfig(hidden=32, conv_channels=16, cfm_projection="none").validate()
    ModelConfig(hidden=32, conv_channels=16, cfm_projection="none", use_cfm=False).validate()


def test_upsampling_bilinear_shape():
    uc = UpsamplingConnection(2, n_prev=4, n=16, mode="bilinear")
    assert uc(torch.rand(1, 2, 4, 4)).shape == (1, 2, 16, 16)


def test_predictor_masks_logits():
    pred = Predictor(3)
    h = torch.randn(2, 3, 4, 4)
    out = pred(h, upper_mask(4))
    assert out.shape == (2, 4, 4)
    assert (out[:, 3, 0] == 0).all()
    expected = torch.einsum("c,bcxy->bxy", pred.conv.weight[0, :, 0, 0], h) + pred.conv.bias
    assert torch.allclose(out[:, 0, 3], expected[:, 0, 3], atol=1e-6)


def assert_same_map_conv(ref, other, x, mask, atol: float = 1e-5, grad_atol: float = 1e-4, bf16: bool = False):
    """Two MapConvNets with the same weights give the same output and the same gradients (input
    and parameters) for ``x`` and ``mask``; under bf16 autocast with ``bf16``."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        a, b = ref(x, mask), other(x, mask)
    assert a.dtype == b.dtype
    torch.testing.assert_close(b.float(), a.float(), atol=atol, rtol=atol)
    ga = torch.autograd.grad(a.float().square().sum(), [x, *ref.parameters()])
    gb = torch.autograd.grad(b.float().square().sum(), [x, *other.parameters()])
    for u, v in zip(ga, gb):
        assert u.dtype == v.dtype == torch.float32
        torch.testing.assert_close(v, u, atol=grad_atol, rtol=grad_atol)


@pytest.mark.parametrize("n, layers, kernel, padding, count_norm, block", [
    (16, 2, 5, "first_layer", True, 8), (32, 3, 3, "first_layer", True, 8), (16, 2, 5, "same", True, 8),
    (64, 4, 5, "first_layer", True, 16), (64, 4, 9, "first_layer", False, 16), (32, 8, 5, "same", False, 5),
])
def test_banded_mapconv_equals_dense(n, layers, kernel, padding, count_norm, block):
    from pln.model.mapconv import MapConvNet

    torch.manual_seed(0)
    dense = MapConvNet(4, layers, kernel, padding, count_norm=count_norm, banded=False)
    banded = MapConvNet(4, layers, kernel, padding, count_norm=count_norm, banded=True, block=block)
    banded.load_state_dict(dense.state_dict())
    mask = valid_mask(n)
    x = torch.randn(2, 4, n, n, requires_grad=True)  # not masked: invalid input cells are read too
    assert_same_map_conv(dense, banded, x, mask)


def test_needed_cells_by_hand():
    from pln.model.mapconv import layer_paddings, mask_weights
    from pln.model.mapconv_banded import needed_cells

    mask = torch.ones(4, 4, dtype=torch.bool).triu()  # cells j >= i
    pads = layer_paddings(3, 2, "same")
    need = needed_cells(mask_weights(mask, 3, pads, True), mask, 3, pads)
    assert torch.equal(need[1], mask)  # the last layer: the valid cells
    # layer 0: every covered cell that a 3x3 window centred on a cell j >= i reads: j >= i - 2
    expected = torch.ones(4, 4, dtype=torch.bool)
    expected[3, 0] = False
    assert torch.equal(need[0], expected)


def test_strip_rectangles_by_hand():
    from pln.model.mapconv_banded import Strip, strip_rectangles

    need = torch.ones(4, 4, dtype=torch.bool).triu()
    assert strip_rectangles(need, 2) == [Strip(0, 2, 0, 2, 0, 4), Strip(2, 4, 2, 4, 2, 4)]
    need = torch.zeros(6, 6, dtype=torch.bool)
    need[1, 4] = need[2, 2] = True
    assert strip_rectangles(need, 4) == [Strip(0, 4, 1, 3, 2, 5), Strip(4, 6, 4, 4, 0, 0)]


def test_banded_mapconv_share_of_the_2dtan_tacos_convnet():
    from pln.model.mapconv import MapConvNet
    from pln.model.mapconv_banded import computed_share

    def share(block: int) -> float:
        net = MapConvNet(1, 8, 5, "first_layer", banded=True, block=block)
        weights, strips = net.plan(valid_mask(128))
        return computed_share(strips, [w.shape[-1] for w in weights])

    # the needed band only: 56% of the dense cells with strips of 16 rows, 60% with 32 (skipping
    # the region below the diagonal band alone leaves 70%)
    assert 0.54 < share(16) < 0.57
    assert 0.59 < share(32) < 0.61


def test_channels_last_mapconv_equals_default_layout():
    from pln.model.mapconv import MapConvNet

    torch.manual_seed(0)
    plain = MapConvNet(4, 3, 5, "first_layer", banded=True, block=8)
    last = MapConvNet(4, 3, 5, "first_layer", banded=True, block=8, channels_last=True)
    last.load_state_dict(plain.state_dict())
    assert_same_map_conv(plain, last, torch.randn(2, 4, 32, 32, requires_grad=True), valid_mask(32))


def test_banded_mapconv_under_bf16_autocast_matches_dense():
    from pln.model.mapconv import MapConvNet

    torch.manual_seed(0)
    dense = MapConvNet(8, 3, 5, "first_layer", banded=False)
    banded = MapConvNet(8, 3, 5, "first_layer", banded=True, block=8)
    banded.load_state_dict(dense.state_dict())
    assert_same_map_conv(dense, banded, torch.randn(2, 8, 32, 32, requires_grad=True), valid_mask(32),
                         atol=2e-2, grad_atol=5e-2, bf16=True)
