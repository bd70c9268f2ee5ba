"""Search spaces: the registry and the built-in spaces (``mbv2``, ``mbv2-se``, ``shufflenetv2``,
``resnet18-mp``, ``resnet34-mp``, ``mbv2-mp``, ``mbv2-se-width``, ``resnet48``, ``ofa-mbv3``)."""

from hwnas.spaces.base import GeneGroup, OpSpec, SearchSpace
from hwnas.spaces.registry import create_space, register_space, space_from_config, space_names

__all__ = ["GeneGroup", "OpSpec", "SearchSpace", "create_space", "register_space",
           "space_from_config", "space_names"]
