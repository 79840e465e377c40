"""Several models of one architecture, trained with different seeds, answering together: their probabilities
are averaged (the strongest isolated-sign recognisers are such averages). It is one `nn.Module`, so prediction,
calibration and ONNX export treat it as any other model."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class EnsembleConfig:
    num_classes: int
    input_size: int
    member: str = "convformer"  # the members' registry name
    member_config: dict = field(default_factory=dict)  # their options (num_classes and input_size: the ensemble's)
    size: int = 2


class Ensemble(nn.Module):
    def __init__(self, config: EnsembleConfig):
        from . import build_model, make_config

        super().__init__()
        if config.member == "ensemble" or config.size < 2:
            raise ValueError(f"an ensemble holds two or more plain models, got {config.size} x {config.member!r}")
        self.config = config
        options = {**config.member_config, "num_classes": config.num_classes, "input_size": config.input_size}
        self.members = nn.ModuleList(build_model(config.member, make_config(config.member, **options))
                                     for _ in range(config.size))  # fmt: skip

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits whose softmax is the members' mean probability (no mask: every frame is real)."""
        probs = torch.stack([torch.softmax(m(x, mask), dim=-1) for m in self.members]).mean(0)
        return torch.log(probs.clamp_min(1e-12))

    @classmethod
    def of(cls, members: list[nn.Module], member: str, member_config: dict) -> Ensemble:
        """An ensemble holding trained `members` (their weights are copied)."""
        config = EnsembleConfig(member_config["num_classes"], member_config["input_size"], member, member_config,
                                len(members))  # fmt: skip
        out = cls(config)
        for mine, theirs in zip(out.members, members, strict=True):
            mine.load_state_dict(theirs.state_dict())
        return out.eval()
