"""With ttnn importable, the allowed ``fabric_config`` names are the installed ttnn's FabricConfig members
(as Tenstorrent's runner resolves them: vllm-tt-plugin e3fc84941bf7a1d0df32aae2c50d539259c925f0 worker.py
``get_fabric_config``, ``ttnn.FabricConfig.__members__``), and a refusal lists them. Only imports ttnn."""

from __future__ import annotations

import pytest

from tests.real_ttnn.systems import NEEDS_TTNN
from tt_vllm_plugin.options import KNOWN_FABRIC_CONFIGS, TTOptions, TTOptionsError, fabric_config_names

ttnn = pytest.importorskip("ttnn", reason=NEEDS_TTNN)


def test_the_installed_ttnns_members_decide():
    members = tuple(ttnn.FabricConfig.__members__)
    assert fabric_config_names() == (members, "the installed ttnn's FabricConfig")
    # The list used without ttnn is this ttnn's (0.81.1's), in its order.
    assert members == KNOWN_FABRIC_CONFIGS
    for name in members:
        assert TTOptions.from_mapping({"fabric_config": name}, "src").fabric_config == name


def test_a_name_the_installed_ttnn_lacks_is_refused_listing_its_members():
    with pytest.raises(TTOptionsError) as error:
        TTOptions.from_mapping({"fabric_config": "FABRIC_2D_DYNAMIC"}, "SRC")
    assert str(error.value) == (
        "TT option 'fabric_config' in SRC must be one of 'DISABLED', 'FABRIC_1D', 'FABRIC_1D_RING', "
        "'FABRIC_1D_NEIGHBOR_EXCHANGE', 'FABRIC_2D', 'FABRIC_2D_TORUS_XY', 'FABRIC_2D_TORUS_X', "
        "'FABRIC_2D_TORUS_Y', 'CUSTOM' (the installed ttnn's FabricConfig), got 'FABRIC_2D_DYNAMIC'."
    )
