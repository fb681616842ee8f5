"""Typed configuration: dataclasses loaded from YAML with `--set section.key=value` overrides.

Each pipeline stage defines one flat dataclass next to its code (e.g. `SimulateConfig` in
`neurovox.simulate`), with a unit in the comment of every field. A command composes the stages it
needs into a run config, a dataclass whose fields are those stage dataclasses plus `seed`:

    @dataclass
    class SpeechRunConfig:
        seed: int = 0                                   # RNG seed, set once by the CLI
        features: FeatureConfig = field(default_factory=FeatureConfig)
        speech: SpeechTrainConfig = field(default_factory=SpeechTrainConfig)

    cfg = load_config(SpeechRunConfig, yaml_path, ["speech.max_epochs=5"])
    save_config(cfg, run_dir / "config.yaml")

Unknown keys are errors (with the closest match suggested), values are type-checked, and no code
changes a config after loading: the saved file is what ran.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from neurovox.errors import ConfigError
from neurovox.utils.check import suggest
from neurovox.utils.files import write_text_atomic

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting only where lossless (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"Config key {key!r}: {value!r} does not fit {tp}.")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"Config key {key!r}: allowed values are {', '.join(map(repr, args))}, got {value!r}."
                + suggest(str(value), [str(a) for a in args])
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"Config key {key!r} expects a list, got {value!r}.")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [_coerce(v, args[0], key) for v in value]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"Config key {key!r} expects {len(args)} values, got {len(value)}: {value!r}.")
            items = [_coerce(v, a, key) for v, a in zip(value, args)]
        else:
            items = [_coerce(v, args[0], key) if args else v for v in value]
        return tuple(items) if origin is tuple else list(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"Config key {key!r} expects a mapping, got {value!r}.")
        return dict(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads exponents without a dot (3e-3, 1e5) as strings
            try:
                value = float(value) if math.isfinite(float(value)) else value
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"Config key {key!r} expects a number, got {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"Config key {key!r} expects an integer, got {value!r}.")
        return int(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"Config key {key!r} expects true or false, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"Config key {key!r} expects a string, got {value!r}.")
        return str(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, prefix=key + ".")
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass `cls` from a (possibly nested) dict; unknown keys raise ConfigError."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"Config section {prefix.rstrip('.') or '<root>'!r} must be a mapping, got {data!r}.")
    ftypes = _field_types(cls)
    for k in data:
        if k not in ftypes:
            raise ConfigError(
                f"Unknown config key {prefix + k!r}." + suggest(k, ftypes) +
                f" Known keys in this section: {', '.join(sorted(ftypes))}."
            )
    kwargs = {}
    for name, tp in ftypes.items():
        if name in data:
            kwargs[name] = _coerce(data[name], tp, prefix + name)
        elif dataclasses.is_dataclass(tp):
            kwargs[name] = tp()
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) suitable for YAML/JSON."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    return conv(cfg)


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """Turn ["a.b=3", "c=x"] into a nested dict, values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} must look like section.key=value (e.g. speech.max_epochs=5).")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"Override {item!r}: cannot parse value {raw!r}: {exc}") from None
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override {item!r} conflicts with an earlier override of {p!r}.")
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> T:
    """Defaults <- `base` dict <- YAML file <- `--set` overrides, then type-checked into `cls`."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {str(p)!r} does not exist.")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {str(p)!r} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"Config file {str(p)!r} must hold a mapping of sections, got {type(loaded).__name__}.")
        data = _merge(data, loaded)
    data = _merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def save_config(cfg: Any, path: str | Path) -> Path:
    return write_text_atomic(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def config_to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
