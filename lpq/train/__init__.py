"""Stage 6: students trained on distilled images and stored soft labels, with DKR and CA, evaluated on real data."""

from lpq.train.seeds import SeedsResult, train_seeds
from lpq.train.train import TrainConfig, TrainResult, train

__all__ = ["SeedsResult", "TrainConfig", "TrainResult", "train", "train_seeds"]
