"""qmia: quantization as a defence against membership inference, reproduced.

Data flows one way: config -> data split -> train (cached checkpoint and outputs) ->
attacks -> tidy results -> notebooks -> book.
"""

from .config import PROFILES, Profile, TrainConfig, get_profile
from .quantizers import QuantSpec
from .train import TrainedModel, train

__all__ = ["PROFILES", "Profile", "QuantSpec", "TrainConfig", "TrainedModel", "get_profile", "train"]
__version__ = "0.1.0"
