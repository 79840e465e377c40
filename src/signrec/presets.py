"""Named training recipes: the reference model exactly as specified, and signrec's best configuration.

A recipe is a model name and options, a `Preprocess`, an `Augment` (or none) and a `TrainConfig`; every
part can be overridden, so that a table can show what each change buys.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .training.config import TrainConfig
from .transforms import Augment, Preprocess


@dataclass
class Recipe:
    name: str
    model: str
    model_options: dict = field(default_factory=dict)
    preprocess: Preprocess = field(default_factory=Preprocess)
    augment: Augment | None = None
    config: TrainConfig = field(default_factory=TrainConfig)

    def with_config(self, **changes: object) -> Recipe:
        return replace(self, config=replace(self.config, **changes))

    def settings(self) -> dict:
        """What makes the trained model what it is (for fingerprints and run cards)."""
        return {"model": self.model, "model_options": dict(self.model_options), "preprocess": self.preprocess.to_dict(),
                "augment": self.augment.to_dict() if self.augment else None, "config": self.config.result_settings()}


def reference(activation: str = "tanh") -> Recipe:
    """Three LSTMs (64, 128, 64) and dense 64, 32 on the raw 1662 values, padded; Adam, up to 2000 epochs."""
    return Recipe(f"reference ({activation})", "lstm", {"activation": activation})


# Augmentation for new people and cameras: handedness (mirror), camera tilt, distance and field of view (rotate,
# scale, shear, aspect), where the person stands (shift), body proportions (arms), where relative to the body they
# sign (hand_place: up to a shoulder width; only clips with a body), how each hand is held (hand_rotate, hand_scale),
# speed and frame rate (stretch, drop), when the recording starts and stops (crop), a tracker losing a hand
# (hand_drop), people who sign a two-handed sign with one hand (one_hand) and landmark noise (jitter).
# BENCHMARKS.md: what it buys.
BEST_AUGMENT = Augment(mirror=0.5, rotate=15, scale=0.2, aspect=1.3, shear=0.15, shift=0.05, arms=0.15, hand_place=1.0,
                       hand_rotate=10, hand_scale=0.1, stretch=0.3, drop=0.1, crop=0.2, hand_drop=0.2, one_hand=0.5,
                       jitter=0.003)  # fmt: skip
# x and y only (depth=False): MediaPipe's z is a one-camera guess, on another scale in each of its models
# Hands-only keypoints also say where in the frame each hand is (image_place; dropped where there is a body)
BEST_PREPROCESS = Preprocess(features="compact", normalize="auto", aspect=True, hand_view=True, hand_shape=True,
                             motion=True, flags=True, resample=64, trim=True, fill_gaps=3, depth=False,
                             image_place=True)  # fmt: skip


def best() -> Recipe:
    """Convolution + transformer (with stochastic depth) on compact x, y features: relative to the body with the
    camera's aspect ratio undone (to the hands when there is no body, with each hand's place in the frame), hand shape (joints relative to the wrist,
    distances between joints), motion and presence flags; clips trimmed to the hands, short hand dropouts filled;
    training data varied as people and cameras vary (where they sign included), symmetric two-handed signs also
    made with one hand (BEST_AUGMENT); AdamW with weight decay, label smoothing and a moving average of the
    weights; the plateau schedule, so that validation decides how long it trains (at most 300 epochs)."""
    return Recipe(
        "best (convformer)", "convformer", {"dim": 128, "drop_path": 0.2},
        BEST_PREPROCESS,
        BEST_AUGMENT,
        TrainConfig(max_epochs=300, patience=30, batch_size=32, lr=1e-3, weight_decay=0.05, label_smoothing=0.1,
                    optimizer="adamw", schedule="plateau", plateau_wait=10, plateau_decay=0.5, warmup_epochs=5,
                    grad_clip=1.0, ema=0.998, precision="auto"),
    )  # fmt: skip


RECIPES = {"reference": reference, "best": best}


def recipe(name: str, **kwargs: object) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name](**kwargs)  # type: ignore[operator]
