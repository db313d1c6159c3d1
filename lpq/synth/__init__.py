"""Stage 2 (recover): synthetic images per class from noise, supervised by the teacher and its class BN statistics."""

from lpq.synth.synth import SynthConfig, SynthManifest, synthesize

__all__ = ["SynthConfig", "SynthManifest", "synthesize"]
