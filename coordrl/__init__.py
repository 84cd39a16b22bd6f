"""coordrl: CoordConv for deep RL -- layers, SB3 feature extractors, training, sweeps, statistics."""

__version__ = "0.1.0"
