"""An official-format 2D-TAN checkpoint loads into a one-stage PLN that computes 2D-TAN's forward."""

import pytest
import torch
import torch.nn.functional as F

from pln.config import ModelConfig
from pln.errors import CheckpointError
from pln.model import PLN
from pln.model.tan_checkpoint import load_2dtan_state_dict

H, D, E, N, UNITS, K, LAYERS, LSTM_LAYERS = 32, 20, 8, 16, 64, 5, 2, 3


def tan_cfg() -> ModelConfig:
    return ModelConfig(feature_dim=D, num_units=UNITS, hidden=H, word_dim=E, lstm_layers=LSTM_LAYERS,
                       clips=[N], conv_channels=H, conv_layers=LAYERS, conv_kernel=K)


def random_tan_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under 2D-TAN's parameter names and shapes (FrameAvgPool, BaseFusion, MapConv)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.3
    sd = {"frame_layer.vis_conv.weight": r(H, D, 1), "frame_layer.vis_conv.bias": r(H)}
    for k in range(LSTM_LAYERS):
        inp = E if k == 0 else H
        sd[f"fusion_layer.textual_encoder.weight_ih_l{k}"] = r(4 * H, inp)
        sd[f"fusion_layer.textual_encoder.weight_hh_l{k}"] = r(4 * H, H)
        sd[f"fusion_layer.textual_encoder.bias_ih_l{k}"] = r(4 * H)
        sd[f"fusion_layer.textual_encoder.bias_hh_l{k}"] = r(4 * H)
    sd["fusion_layer.tex_linear.weight"], sd["fusion_layer.tex_linear.bias"] = r(H, H), r(H)
    sd["fusion_layer.vis_conv.weight"], sd["fusion_layer.vis_conv.bias"] = r(H, H, 1, 1), r(H)
    for k in range(LAYERS):
        sd[f"map_layer.convs.{k}.weight"], sd[f"map_layer.convs.{k}.bias"] = r(H, H, K, K), r(H)
    sd["pred_layer.weight"], sd["pred_layer.bias"] = r(1, H, 1, 1), r(1)
    return sd


# ------------------------------------------------------------------ reference (dense, independent)


def ref_lstm(sd, words):
    """Plain LSTM equations (gate order i, f, g, o); returns the top layer's outputs [B, L, H]."""
    x = words
    for k in range(LSTM_LAYERS):
        p = lambda n: sd[f"fusion_layer.textual_encoder.{n}_l{k}"]
        h = torch.zeros(x.shape[0], H)
        c = torch.zeros(x.shape[0], H)
        outs = []
        for t in range(x.shape[1]):
            z = x[:, t] @ p("weight_ih").T + p("bias_ih") + h @ p("weight_hh").T + p("bias_hh")
            i, f, gg, o = z.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x = torch.stack(outs, dim=1)
    return x


def ref_sparse_mask(n):
    """Proposal cells per 2D-TAN's NUM_SCALE_LAYERS=[16] for N=16: every (i, j) with j >= i."""
    assert n == 16
    return torch.ones(n, n).triu()


def ref_2dtan(sd, units, words, lengths):
    b = units.shape[0]
    # frame layer: 1x1 Conv1d + ReLU, AvgPool1d(kernel=stride=UNITS/N)
    vis = torch.relu(torch.einsum("hd,bmd->bhm", sd["frame_layer.vis_conv.weight"][:, :, 0], units)
                     + sd["frame_layer.vis_conv.bias"][None, :, None])
    k = UNITS // N
    clips = torch.stack([vis[:, :, i * k:(i + 1) * k].mean(dim=2) for i in range(N)], dim=2)
    # proposal layer: max over each span
    mask = ref_sparse_mask(N)
    map_h = torch.zeros(b, H, N, N)
    for i in range(N):
        for j in range(i, N):
            map_h[:, :, i, j] = clips[:, :, i:j + 1].max(dim=2).values
    # fusion: LSTM output at the last word, linear, 1x1 conv, product, L2 over channels, mask
    txt = ref_lstm(sd, words)[torch.arange(b), lengths - 1]
    txt = txt @ sd["fusion_layer.tex_linear.weight"].T + sd["fusion_layer.tex_linear.bias"]
    vmap = F.conv2d(map_h, sd["fusion_layer.vis_conv.weight"], sd["fusion_layer.vis_conv.bias"])
    fused = vmap * txt[:, :, None, None]
    x = fused / fused.norm(dim=1, keepdim=True).clamp(min=1e-12) * mask
    # map layer: paddings [(K-1)*L/2, 0, ...]; weight 1/count of the running mask
    running = mask[None, None]
    for layer in range(LAYERS):
        pad = (K - 1) * LAYERS // 2 if layer == 0 else 0
        x = torch.relu(F.conv2d(x, sd[f"map_layer.convs.{layer}.weight"], sd[f"map_layer.convs.{layer}.bias"],
                                padding=pad))
        count = torch.round(F.conv2d(running, torch.ones(1, 1, K, K), padding=pad))
        weight = torch.zeros_like(count)
        weight[count > 0] = 1 / count[count > 0]
        x = x * weight
        running = (weight > 0).float()
    return (F.conv2d(x, sd["pred_layer.weight"], sd["pred_layer.bias"]) * mask)[:, 0]


# ------------------------------------------------------------------ tests


def inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    units = torch.randn(3, UNITS, D, generator=g)
    words = torch.randn(3, 6, E, generator=g)
    return units, words, torch.tensor([6, 2, 4])


@pytest.mark.parametrize("wrap", ["raw", "module", "state_dict"])
def test_loaded_model_matches_reference_2dtan(tmp_path, wrap):
    sd = random_tan_state_dict()
    obj = {"raw": sd, "module": {f"module.{k}": v for k, v in sd.items()},
           "state_dict": {"state_dict": {f"module.{k}": v for k, v in sd.items()}}}[wrap]
    path = tmp_path / "tan.pkl"
    torch.save(obj, path)
    model = PLN(tan_cfg())
    load_2dtan_state_dict(model, path)
    units, words, lengths = inputs()
    with torch.no_grad():
        out = model(units, words, lengths)
        ref = ref_2dtan(sd, units, words, lengths)
    assert ref.std() > 1e-3  # the comparison is not between two zero maps
    assert torch.allclose(out.logits[0], ref, atol=1e-5)
    assert torch.allclose(out.scores[0], torch.sigmoid(ref) * out.masks[0], atol=1e-5)


def test_missing_key_is_refused(tmp_path):
    sd = random_tan_state_dict()
    del sd["pred_layer.bias"]
    path = tmp_path / "missing.pkl"
    torch.save(sd, path)
    model = PLN(tan_cfg())
    before = model.predictors[0].conv.weight.clone()
    with pytest.raises(CheckpointError, match=r"missing\.pkl.*missing: pred_layer\.bias"):
        load_2dtan_state_dict(model, path)
    assert torch.equal(model.predictors[0].conv.weight, before)  # nothing was loaded


def test_wrong_shape_and_unexpected_keys_are_refused(tmp_path):
    sd = random_tan_state_dict()
    sd["map_layer.convs.1.weight"] = torch.zeros(H, H, 3, 3)
    sd["frame_layer.extra.weight"] = torch.zeros(2)
    path = tmp_path / "bad.pkl"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_2dtan_state_dict(PLN(tan_cfg()), path)
    msg = str(err.value)
    assert "bad.pkl" in msg and "map_layer.convs.1.weight" in msg and "shape mismatch" in msg
    assert "unexpected: frame_layer.extra.weight" in msg


def test_unreadable_and_multistage(tmp_path):
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pkl"):
        load_2dtan_state_dict(PLN(tan_cfg()), path)
    with pytest.raises(CheckpointError, match="not found"):
        load_2dtan_state_dict(PLN(tan_cfg()), tmp_path / "absent.pkl")
    torch.save(random_tan_state_dict(), tmp_path / "ok.pkl")
    cfg = tan_cfg()
    cfg.clips = [16, 32]
    with pytest.raises(CheckpointError, match="one-stage"):
        load_2dtan_state_dict(PLN(cfg), tmp_path / "ok.pkl")
