"""Model registry: name -> model class, so checkpoints can rebuild a model from JSON.

Every gaatool model class has a class attribute ``name`` (str), a class
attribute ``Config`` (a dataclass of JSON-serialisable fields), an instance
attribute ``config`` (an instance of ``Config``), and is constructed as
``cls(config)``. Checkpoints store ``{"name": ..., "config": asdict(config)}``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import CheckpointError, ConfigError

__all__ = ["register", "build_model", "model_spec", "MODELS"]

MODELS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator that adds a model class to the registry under ``cls.name``."""
    MODELS[cls.name] = cls
    return cls


def _ensure_loaded() -> None:
    # Importing the model modules fills the registry; done lazily so that
    # importing the registry itself stays cheap.
    from . import crystal, forces, backmap  # noqa: F401


def model_spec(model) -> dict[str, Any]:
    """The JSON description of ``model``: ``{"name": str, "config": dict}``."""
    return {"name": model.name, "config": dataclasses.asdict(model.config)}


def config_from_dict(cls: type, values: dict[str, Any]):
    """Build ``cls.Config`` from a dict, rejecting unknown keys with a clear error."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"model {cls.name!r}: unknown config keys {unknown}; known keys are {sorted(fields)}")
    return cls.Config(**values)


def build_model(spec: dict[str, Any]):
    """Rebuild a model (with fresh weights) from ``model_spec`` output."""
    _ensure_loaded()
    name = spec.get("name")
    if name not in MODELS:
        raise CheckpointError(f"unknown model {name!r}; this gaatool knows {sorted(MODELS)}")
    cls = MODELS[name]
    return cls(config_from_dict(cls, dict(spec.get("config", {}))))
