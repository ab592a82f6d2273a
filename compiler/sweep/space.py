"""The design space of a sweep: templates with option lists, named axes, constraints.

A sweep crosses kernels x pipelines x targets. Pipeline and target strings are xDSL
pass-option strings whose option values may be lists or ranges:

    prune-nm{n=[1,2] m=4}
    systolic{rows=[8:64:*2] cols=$side dataflow=[os,ws,is]}

`[a,b,c]` is a list, `[lo:hi:step]` an inclusive arithmetic range, `[lo:hi:*f]` an
inclusive geometric one; `$name` refers to a named axis of the sweep file (one axis may
set several options, so `rows=$side cols=$side` sweeps square arrays). Each inline list
is an axis named after its option (`rows`), and also `<pass>_<option>` (`prune_nm_n`).

A point is one concrete (kernel, pipeline, target). Constraints are Python expressions
over the point's names: every option of the resolved target (defaults and presets
included), the pipeline's options, the named axes, `kernel` and `target`. A constraint
naming something a point does not define does not apply to that point; a name no point
defines is a mistake.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np


class SweepError(Exception):
    """A mistake in a sweep's definition; the message names the string and the rule."""


@functools.cache
def sparsec_version() -> str:
    try:
        return version("sparsec")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


# --------------------------------------------------------------------------- values

_RANGE = re.compile(r"^\s*([^:\s]+)\s*:\s*([^:\s]+)\s*(?::\s*(\*?)\s*([^:\s]+)\s*)?$")
MAX_AXIS_VALUES = 100_000


def parse_scalar(text: str) -> Any:
    """`8` -> 8, `0.5` -> 0.5, `true` -> True, `"a b"` -> 'a b', `ws` -> 'ws'."""
    text = text.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        pass
    if text in ("true", "false"):
        return text == "true"
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def option_text(value: Any) -> str:
    """A value written back into xDSL option syntax."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z_][\w.-]*", value):
        return json.dumps(value)
    return str(value)


def parse_values(text: str, where: str) -> list[Any]:
    """The values of `[a,b,c]`, `[lo:hi:step]` or `[lo:hi:*factor]` (brackets included)."""
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise SweepError(f"{where}: '{text}' is not a list '[a,b]' or range '[lo:hi:step]'")
    inner = inner[1:-1]
    if ":" in inner:
        return _range_values(inner, where)
    values = [parse_scalar(item) for item in inner.split(",") if item.strip()]
    if not values:
        raise SweepError(f"{where}: empty list '{text}'")
    return values


def _range_values(inner: str, where: str) -> list[Any]:
    match = _RANGE.match(inner)
    if not match:
        raise SweepError(f"{where}: bad range '[{inner}]' (write [lo:hi], [lo:hi:step] or "
                         "[lo:hi:*factor])")
    lo, hi, geometric, step = (parse_scalar(match[1]), parse_scalar(match[2]),
                               match[3] == "*", parse_scalar(match[4] or "1"))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi, step)):
        raise SweepError(f"{where}: range '[{inner}]' needs numbers")
    if hi < lo:
        raise SweepError(f"{where}: range '[{inner}]' ends below its start")
    if (geometric and (step <= 1 or lo <= 0)) or (not geometric and step <= 0):
        raise SweepError(f"{where}: range '[{inner}]' never reaches its end (step "
                         f"{'*' if geometric else ''}{step})")
    integral = all(isinstance(v, int) for v in (lo, hi, step))
    values: list[Any] = []
    value: float = lo
    tolerance = 1e-9 * max(abs(hi), 1.0)
    while value <= hi + tolerance:
        values.append(int(value) if integral else float(f"{value:.12g}"))
        if len(values) > MAX_AXIS_VALUES:
            raise SweepError(f"{where}: range '[{inner}]' has over {MAX_AXIS_VALUES} values")
        value = value * step if geometric else lo + len(values) * step
    return values


def toml_axis_values(name: str, raw: Any, where: str) -> list[Any]:
    """A named axis from a sweep file: a TOML array, or a range string '[8:64:*2]'."""
    if isinstance(raw, str):
        return parse_values(raw, f"{where}: axis '{name}'")
    if isinstance(raw, list) and raw and all(isinstance(v, (int, float, str, bool)) for v in raw):
        return list(raw)
    raise SweepError(f"{where}: axis '{name}' must be a non-empty array of numbers, strings "
                     "or booleans, or a range string like \"[8:64:*2]\"")


# ------------------------------------------------------------------------ templates

_PASS = re.compile(r"([A-Za-z_][\w.-]*)\s*\{([^{}]*)\}")
_SWEPT = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*(\[[^\[\]]*\]|\$[A-Za-z_]\w*)")
_FIXED = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*(\"[^\"]*\"|[^\s\[\]$]+)")


@dataclass(frozen=True)
class Slot:
    """One swept option of a template: `rows=[8,16]` or `cols=$side`."""

    pass_name: str
    option: str
    axis: str
    """The axis it reads: `rows` (inline list) or `side` (named axis `$side`)."""
    values: tuple[Any, ...] | None
    """Inline values; None for a named axis (the sweep file holds them)."""

    @property
    def qualified(self) -> str:
        return f"{self.pass_name}_{self.option}".replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class Template:
    """A pipeline or target string with swept options replaced by slots."""

    text: str
    parts: tuple[str, ...]
    """Literal pieces; slot i goes between parts[i] and parts[i + 1]."""
    slots: tuple[Slot, ...]

    @classmethod
    def parse(cls, text: str, what: str) -> Template:
        parts: list[str] = []
        slots: list[Slot] = []
        cursor = 0
        for pass_match in _PASS.finditer(text):
            body_start = pass_match.start(2)
            for option in _SWEPT.finditer(pass_match[2]):
                value = option[2]
                if value.startswith("$"):
                    slot = Slot(pass_match[1], option[1], value[1:], None)
                else:
                    where = f"{what} '{text}': {pass_match[1]}.{option[1]}"
                    slot = Slot(pass_match[1], option[1], option[1],
                                tuple(parse_values(value, where)))
                parts.append(text[cursor:body_start + option.start(2)])
                cursor = body_start + option.end(2)
                slots.append(slot)
        parts.append(text[cursor:])
        if "[" in "".join(parts) or "$" in "".join(parts):
            raise SweepError(f"{what} '{text}': a list or $axis must be an option value "
                             "inside name{...}, e.g. systolic{rows=[8,16]}")
        return cls(text, tuple(parts), tuple(slots))

    def fill(self, values: Sequence[Any]) -> str:
        pieces = [self.parts[0]]
        for value, part in zip(values, self.parts[1:], strict=True):
            pieces += [option_text(value), part]
        return "".join(pieces)


def fixed_options(text: str) -> dict[str, Any]:
    """Options of a concrete pipeline string, under `option` and `<pass>_<option>`."""
    names: dict[str, Any] = {}
    for pass_match in _PASS.finditer(text):
        qualifier = pass_match[1].replace("-", "_").replace(".", "_")
        for option in _FIXED.finditer(pass_match[2]):
            value = parse_scalar(option[2])
            names[f"{qualifier}_{option[1]}"] = value
            names.setdefault(option[1], value)
    return names


@functools.lru_cache(maxsize=4096)
def canonical_pipeline(text: str) -> str:
    """A pipeline with every option of every pass spelled out (defaults included) in the
    pass's own order, so two spellings of one pipeline are one configuration."""
    from sparsec.compiler.driver import parse_pass_pipeline

    try:
        passes = parse_pass_pipeline(text)
    except Exception:  # noqa: BLE001 - an unusable pipeline still has a key; it fails when run
        return text.strip()
    return ",".join(str(p.pipeline_pass_spec(include_default=True)) for p in passes)


@functools.lru_cache(maxsize=256)
def _preset_config(name: str, preset: str) -> dict[str, Any]:
    from sparsec.compiler.driver import Target

    return Target.parse(f'{name}{{preset="{preset}"}}').spec.config()


def _full_config(text: str) -> dict[str, Any] | None:
    from sparsec.compiler.driver import Target

    try:
        return Target.parse(text).spec.config()
    except Exception:  # noqa: BLE001 - an unusable target still has a key; it fails when run
        return None


def resolve_target(text: str) -> dict[str, Any] | None:
    """Every option of a target (preset applied, then the options given), or None if it
    does not parse. The preset's configuration is parsed once; the options given are laid
    over it with the spec's own typing (an int for a float option becomes a float), which
    is what `Target.parse` does at a tenth of its cost (the driver keys every point)."""
    from sparsec.backends.common.spec import parse_target_string

    try:
        arg = parse_target_string(text).normalize_parameter_names()
        params = arg.parameters
        preset = params.get("preset", ("default",))
        config = dict(_preset_config(arg.name, str(preset[0]))) if len(preset) == 1 else None
    except Exception:  # noqa: BLE001 - unknown target, bad preset or syntax
        return _full_config(text)
    if config is None:
        return _full_config(text)
    for option, values in params.items():
        if option not in config or len(values) != 1:
            return _full_config(text)
        value, expected = values[0], type(config[option])
        if expected is float and type(value) is int:
            value = float(value)
        if type(value) is not expected:
            return _full_config(text)
        config[option] = value
    return config


# ---------------------------------------------------------------------- constraints

_ALLOWED_NODES = (ast.Expression, ast.BoolOp, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Name,
                  ast.Constant, ast.Load, ast.And, ast.Or, ast.Not, ast.Add, ast.Sub,
                  ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd,
                  ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
                  ast.IfExp, ast.Call, ast.Tuple, ast.List)
_FUNCTIONS = {"min": min, "max": max, "abs": abs, "log2": math.log2, "sqrt": math.sqrt}


@dataclass(frozen=True)
class Constraint:
    """A boolean expression over a point's names, e.g. `rows * cols == 1024`."""

    text: str
    code: Any
    names: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as err:
            raise SweepError(f"constraint '{text}': bad expression ({err.msg})") from None
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED_NODES):
                raise SweepError(f"constraint '{text}': {type(node).__name__} is not allowed "
                                 "(use names, numbers, arithmetic, comparisons, and/or/not, "
                                 f"{', '.join(_FUNCTIONS)})")
            if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name)
                                                   and node.func.id in _FUNCTIONS):
                raise SweepError(f"constraint '{text}': only {', '.join(_FUNCTIONS)} may be "
                                 "called")
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(_FUNCTIONS)
        return cls(text, compile(tree, "<constraint>", "eval"), frozenset(names))

    def applies(self, names: dict[str, Any]) -> bool:
        return self.names <= names.keys()

    def holds(self, names: dict[str, Any]) -> bool:
        try:
            return bool(eval(self.code, {"__builtins__": {}, **_FUNCTIONS}, names))  # noqa: S307
        except (ArithmeticError, TypeError, ValueError) as err:
            raise SweepError(f"constraint '{self.text}': {err}") from None


# --------------------------------------------------------------------------- points

@dataclass(frozen=True)
class Kernel:
    """A spec file read once: its text travels to the workers (no shared disk needed)."""

    path: str
    text: str

    @classmethod
    def read(cls, path: str | Path) -> Kernel:
        try:
            return cls(str(Path(path).resolve()), Path(path).read_text())
        except OSError as err:
            raise SweepError(f"{path}: cannot read spec ({err.strerror})") from None

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @cached_property
    def sha(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    """One configuration: what a worker compiles and runs, and its key in the database."""

    kernel: Kernel
    pipeline: str
    target: str
    execute: bool
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    """The axis values that made it (for the database and Optuna)."""
    space: str = ""
    """Hash of the sweep definition it came from."""

    @cached_property
    def resolved(self) -> dict[str, Any] | None:
        """Every option of the target, or None if it does not parse (it fails when run)."""
        return resolve_target(self.target)

    @cached_property
    def canonical_target(self) -> str:
        if self.resolved is None:
            return self.target.strip()
        options = " ".join(f"{k}={option_text(v)}" for k, v in self.resolved.items())
        return f"{self.target_name}{{{options}}}"

    @cached_property
    def target_name(self) -> str:
        return self.target.split("{", 1)[0].strip()

    @cached_property
    def config(self) -> dict[str, Any]:
        """What the key hashes: anything that can change the point's figures."""
        return {"kernel": self.kernel.name, "spec_sha": self.kernel.sha,
                "pipeline": canonical_pipeline(self.pipeline), "target": self.canonical_target,
                "execute": self.execute, "sparsec_version": sparsec_version()}

    @cached_property
    def key(self) -> str:
        blob = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def names(self) -> dict[str, Any]:
        """Names constraints may use at this point."""
        names: dict[str, Any] = {"kernel": self.kernel.name, "target": self.target_name}
        names.update(fixed_options(self.pipeline))
        config = self.resolved or {}
        names.update(config)
        names.update({f"{self.target_name}_{k}": v for k, v in config.items()})
        names.update(self.params)
        return names

    def to_task(self) -> dict[str, Any]:
        """The picklable description a worker runs (plain data, no sparsec objects)."""
        return {"key": self.key, "spec_path": self.kernel.path, "spec_text": self.kernel.text,
                "pipeline": self.pipeline, "target": self.target, "execute": self.execute}


# ---------------------------------------------------------------------------- space

@dataclass(frozen=True)
class Combo:
    """One kernel x pipeline template x target template."""

    kernel: Kernel
    pipeline: Template
    target: Template

    @property
    def slots(self) -> tuple[Slot, ...]:
        return self.pipeline.slots + self.target.slots


@dataclass
class Space:
    """Everything a sweep may run, and how to pick its points."""

    combos: list[Combo]
    axes: dict[str, list[Any]]
    constraints: list[Constraint]
    execute: bool = True
    strategy: str = "grid"
    samples: int | None = None
    seed: int = 0
    objectives: list[str] = field(default_factory=list)
    source: str = "<command line>"

    @classmethod
    def build(cls, kernels: Sequence[str | Path], pipelines: Sequence[str],
              targets: Sequence[str], axes: dict[str, list[Any]] | None = None,
              constraints: Sequence[str] = (), **settings: Any) -> Space:
        if not kernels:
            raise SweepError("no kernel spec to sweep")
        if not targets:
            raise SweepError("no target to sweep")
        axes = dict(axes or {})
        read = [Kernel.read(k) for k in kernels]
        pipes = [Template.parse(p or "", "pipeline") for p in (pipelines or [""])]
        tgts = [Template.parse(t, "target") for t in targets]
        combos = [Combo(k, p, t) for k in read for p in pipes for t in tgts]
        for combo in combos:
            for slot in combo.slots:
                if slot.values is None and slot.axis not in axes:
                    raise SweepError(f"'${slot.axis}' in {slot.pass_name}{{...}} names no axis "
                                     f"(axes: {', '.join(axes) or 'none'})")
        space = cls(combos, axes, [Constraint.parse(c) for c in constraints], **settings)
        space._check_settings()
        return space

    def _check_settings(self) -> None:
        if self.strategy not in STRATEGIES:
            raise SweepError(f"unknown strategy '{self.strategy}' (known: {', '.join(STRATEGIES)})")
        if self.strategy != "grid" and not self.samples:
            raise SweepError(f"strategy '{self.strategy}' needs a number of samples "
                             "(--samples N or samples = N)")
        if self.samples is not None and self.samples < 1:
            raise SweepError("samples must be >= 1")

    @cached_property
    def id(self) -> str:
        """Hash of the definition: rows made by this sweep carry it (Optuna resumes by it)."""
        text = json.dumps({"combos": [[c.kernel.sha, c.pipeline.text, c.target.text]
                                      for c in self.combos], "axes": self.axes,
                           "constraints": [c.text for c in self.constraints],
                           "execute": self.execute}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # --- one combination's dimensions: its slots' axes, each axis once
    def dimensions(self, combo: Combo) -> list[tuple[str, list[Any]]]:
        """(axis name, values) of a combination, named axes and inline ones, in order."""
        dims: dict[str, list[Any]] = {}
        for slot in combo.slots:
            if slot.values is None:
                dims.setdefault(slot.axis, list(self.axes[slot.axis]))
            else:
                dims[slot.qualified] = list(slot.values)
        return list(dims.items())

    def point(self, combo: Combo, chosen: dict[str, Any]) -> Point:
        """The point of a combination with each dimension set (by `dimensions` names)."""
        values = []
        for slot in combo.slots:
            values.append(chosen[slot.axis if slot.values is None else slot.qualified])
        pipeline = combo.pipeline.fill(values[:len(combo.pipeline.slots)])
        target = combo.target.fill(values[len(combo.pipeline.slots):])
        params = dict(chosen)
        for slot in combo.slots:  # inline axes also answer to their short name
            if slot.values is not None:
                params.setdefault(slot.option, chosen[slot.qualified])
        return Point(combo.kernel, pipeline, target, self.execute, params, self.id)

    def allowed(self, point: Point, seen_names: set[str] | None = None) -> bool:
        if not self.constraints:
            return True
        names = point.names()
        if seen_names is not None:
            seen_names.update(names)
        return all(c.holds(names) for c in self.constraints if c.applies(names))

    def size(self) -> int:
        """Points of the full grid before constraints."""
        return sum(math.prod(len(v) for _, v in self.dimensions(c)) for c in self.combos)

    def grid(self) -> Iterator[Point]:
        """Every point of every combination that meets the constraints, in order."""
        seen: set[str] = set()
        for combo in self.combos:
            dims = self.dimensions(combo)
            names = [n for n, _ in dims]
            for values in itertools.product(*(v for _, v in dims)):
                point = self.point(combo, dict(zip(names, values, strict=True)))
                if self.allowed(point, seen):
                    yield point
        self._check_constraint_names(seen)

    def random(self, samples: int, seed: int) -> Iterator[Point]:
        """`samples` distinct points drawn uniformly from the constrained grid (fewer if
        the grid is smaller), reproducible from `seed`."""
        rng = np.random.default_rng(seed)
        sizes = [math.prod(len(v) for _, v in self.dimensions(c)) for c in self.combos]
        total = sum(sizes)
        if total <= 4 * samples:  # small grid: draw from the enumerated constrained grid
            points = list(self.grid())
            for index in rng.permutation(len(points))[:samples]:
                yield points[index]
            return
        seen: set[str] = set()
        drawn: set[int] = set()
        produced = 0
        for _ in range(100 * samples):
            if produced == samples:
                break
            flat = int(rng.integers(total))
            if flat in drawn:
                continue
            drawn.add(flat)
            point = self._point_at(flat, sizes)
            if self.allowed(point, seen):
                produced += 1
                yield point
        self._check_constraint_names(seen)

    def _point_at(self, flat: int, sizes: list[int]) -> Point:
        """The point at a flat index of the grid (mixed radix over each combination)."""
        for combo, size in zip(self.combos, sizes, strict=True):
            if flat >= size:
                flat -= size
                continue
            chosen: dict[str, Any] = {}
            for name, values in reversed(self.dimensions(combo)):
                flat, index = divmod(flat, len(values))
                chosen[name] = values[index]
            return self.point(combo, chosen)
        raise IndexError(flat)

    def _check_constraint_names(self, seen: set[str]) -> None:
        if not seen:
            return
        for constraint in self.constraints:
            missing = sorted(constraint.names - seen)
            if missing:
                raise SweepError(f"constraint '{constraint.text}' names {', '.join(missing)}, "
                                 "which no point defines (axes, target and pass options, "
                                 "kernel, target)")


STRATEGIES = ("grid", "random", "optuna")
DEFAULT_OBJECTIVES = ("cycles", "energy_pj", "error")


# ------------------------------------------------------------------------ sweep file

_FILE_KEYS = {"name", "kernels", "pipelines", "targets", "axes", "constraints", "execute",
              "strategy", "samples", "seed", "objectives"}


def load_sweep_file(path: str | Path, overrides: dict[str, Any] | None = None) -> Space:
    """A TOML sweep file (see docs/sweeps.md); kernel paths are relative to the file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as err:
        raise SweepError(f"{path}: cannot read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise SweepError(f"{path}: {err}") from None
    unknown = sorted(set(data) - _FILE_KEYS)
    if unknown:
        raise SweepError(f"{path}: unknown key(s) {', '.join(unknown)} (known: "
                         f"{', '.join(sorted(_FILE_KEYS))})")

    def strings(key: str, default: list[str] | None = None) -> list[str]:
        value = data.get(key, default)
        if value is None:
            raise SweepError(f"{path}: '{key}' is missing (a list of strings)")
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SweepError(f"{path}: '{key}' must be a list of strings")
        return value

    axes_raw = data.get("axes", {})
    if not isinstance(axes_raw, dict):
        raise SweepError(f"{path}: [axes] must be a table of name = values")
    axes = {name: toml_axis_values(name, raw, str(path)) for name, raw in axes_raw.items()}
    settings: dict[str, Any] = {
        "execute": bool(data.get("execute", True)), "strategy": data.get("strategy", "grid"),
        "samples": data.get("samples"), "seed": int(data.get("seed", 0)),
        "objectives": strings("objectives", list(DEFAULT_OBJECTIVES)), "source": str(path)}
    settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
    constraints = strings("constraints", []) + list(settings.pop("constraints", []) or [])
    kernels = [path.parent / k for k in strings("kernels")]
    return Space.build(kernels, strings("pipelines", [""]), strings("targets"), axes,
                       constraints, **settings)
