"""Model registry: name -> builder. Unknown names fail with the list of known ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from torch import nn

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], type]] = {}
_COMPOSED: set[str] = set()  # made of other models (an ensemble): built by training, not chosen with --model


def register(name: str, config_cls: type, composed: bool = False) -> Callable:
    """Register `builder(config) -> nn.Module` under `name`, with its config dataclass."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = (builder, config_cls)
        if composed:
            _COMPOSED.add(name)
        return builder

    return wrap


def known_models(composed: bool = False) -> list[str]:
    """The architectures one can train (`composed`: also the models made of them, such as an ensemble)."""
    return sorted(n for n in _REGISTRY if composed or n not in _COMPOSED)


def _entry(name: str) -> tuple[Callable[..., nn.Module], type]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(known_models())}")
    return _REGISTRY[name]


def make_config(name: str, **kwargs: Any) -> Any:
    """The config dataclass of model `name`, built from keyword arguments (unknown keys are an error)."""
    _, cls = _entry(name)
    fields = set(cls.__dataclass_fields__)
    unknown = set(kwargs) - fields
    if unknown:
        raise TypeError(f"model {name!r} has no options {sorted(unknown)}; options: {sorted(fields)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})


def build_model(name: str, config: Any) -> nn.Module:
    builder, _ = _entry(name)
    return builder(config)


def keep_classes(net: nn.Module, name: str, config: Any, keep: list[int]) -> tuple[nn.Module, Any]:
    """The same trained model answering only among classes `keep` (in that order): a copy built with
    `num_classes=len(keep)` whose class-sized weights (the output layer) are those rows of `net`'s. Its softmax is
    `net`'s probabilities of those classes, renormalised; nothing else changes."""
    import torch

    if name in _COMPOSED:  # an average of renormalised members is not the renormalised average
        raise ValueError(f"keep the classes of each member of a {name!r}, not of the whole")
    if not keep or len(set(keep)) != len(keep) or not all(0 <= k < config.num_classes for k in keep):
        raise ValueError(f"keep must name distinct classes of the {config.num_classes}, got {keep}")
    if len(keep) == config.num_classes:  # the class-sized weights are found by their changed shape
        raise ValueError(f"keep fewer classes than the model's {config.num_classes}, got {len(keep)}")
    new_config = replace(config, num_classes=len(keep))
    new = build_model(name, new_config)
    target, rows = new.state_dict(), torch.as_tensor(keep)
    state = {}
    for key, value in net.state_dict().items():
        if value.shape != target[key].shape:
            if value.shape[0] != config.num_classes or value.shape[1:] != target[key].shape[1:]:
                raise ValueError(f"{name}: weight {key} {tuple(value.shape)} is not per class")
            value = value.index_select(0, rows)
        state[key] = value
    new.load_state_dict(state)
    return new.eval(), new_config


from . import convformer, ensemble, lstm

register("lstm", lstm.LSTMConfig)(lstm.LSTMClassifier)
register("convformer", convformer.ConvformerConfig)(convformer.Convformer)
register("bigru", convformer.BiGRUConfig)(convformer.BiGRU)
register("ensemble", ensemble.EnsembleConfig, composed=True)(ensemble.Ensemble)
