"""What `pln bench` measures: the paper's configurations at real widths and the speed-only sweep."""

from __future__ import annotations

from typing import Any

# The paper's configurations (SPEC sections 3 and 6): ModelConfig fields over the defaults.
CONFIGS: dict[str, dict[str, Any]] = {
    "2dtan-tacos-128": dict(feature_dim=4096, clips=[128], conv_layers=8, conv_kernel=5),
    "pln-tacos-32-128": dict(feature_dim=4096, clips=[32, 128]),
    "pln-activitynet-16-64": dict(feature_dim=500, clips=[16, 64], positional_encoding=True),
    "pln-charades-16-64": dict(feature_dim=4096, clips=[16, 64]),
}
# The dataset family of each configuration (its synthetic splits and its train queries).
FAMILY = {"2dtan-tacos-128": "tacos", "pln-tacos-32-128": "tacos",
          "pln-activitynet-16-64": "activitynet", "pln-charades-16-64": "charades"}
# Speed-only ConvNet settings tried by --sweep (the first is "ours").
SWEEP = {"ours": {}, "ours-block32": {"conv_block": 32}, "ours-cl": {"conv_channels_last": True},
         "ours-block32-cl": {"conv_block": 32, "conv_channels_last": True}}
SWEEP_CONFIGS = ("2dtan-tacos-128", "pln-tacos-32-128")
