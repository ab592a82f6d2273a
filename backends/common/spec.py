"""The base class of every accelerator's hardware description.

A backend's spec is data: a frozen dataclass of the hardware (array size, buffers and
their bytes, bandwidths, clock, energy per action) with named presets. Targets are
written in xDSL's pass-option syntax, `systolic{preset=tpu rows=16 dataflow=ws}`: the
preset supplies every field, and the options given override it. The same class is the
option set of the backend's `lower-<name>` pass, so `sparsec --target` and `xdsl-opt -p`
accept the same words.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from xdsl.utils.arg_spec import ArgSpec, ArgSpecConvertible, parse_spec
from xdsl.utils.exceptions import ArgSpecParseError

_OPTION_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}


def _is_instance(value: Any, expected: type) -> bool:
    """Pass-option typing: bools are not ints, ints are acceptable floats."""
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


MAX_OPTION_INT = 2**31 - 1
"""Largest integer option value: hardware counts and sizes in their units (rows, KB, ...),
kept where numpy's 64-bit products of several of them cannot overflow (A)."""


class SpecError(ValueError):
    """A bad target or option value; the message names the option and what is allowed."""


@dataclass(frozen=True)
class AcceleratorSpec(ArgSpecConvertible):
    """Hardware parameters of one accelerator; subclasses add fields and presets."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    """One line for `sparsec targets`: what the machine is and whose accounting it follows."""
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    """Named configurations: field values overriding the dataclass defaults."""
    dram_level: ClassVar[str] = "dram"
    """The memory level of the report's `bytes` that is off-chip (`hbm` on a GPU)."""
    dram_model: ClassVar[str] = "modelled"
    """How off-chip memory is accounted: `modelled` (a level with bandwidth, whose transfers
    take time and energy) or `boundary` (each operand read once and each result written
    once: bytes and energy, no time - the machine's own model assumes data on chip)."""
    weights_preloaded: ClassVar[bool] = False
    """Whether compile-time weights sit on chip before the run (not counted off-chip)."""

    preset: str = "default"

    @classmethod
    def from_spec(cls, spec: ArgSpec) -> Self:
        """Build from `name{opts}`: the preset's values, then the options given."""
        params = spec.normalize_parameter_names().parameters
        params = cls._check_option_types(spec.name, params)
        try:
            parsed = super().from_spec(ArgSpec(cls.name, dict(params)))
        except SpecError:
            raise
        except (ValueError, TypeError) as err:
            raise SpecError(f"{spec.name}: {err}") from None
        preset_name = parsed.preset
        if preset_name != "default" and preset_name not in cls.presets:
            known = ", ".join(["default", *cls.presets])
            raise SpecError(f"{spec.name}: unknown preset '{preset_name}' (known: {known})")
        values = {f.name: getattr(parsed, f.name) for f in dataclasses.fields(cls)}
        values.update(cls.presets.get(preset_name, {}))
        values.update({k: getattr(parsed, k) for k in params})
        return cls(**values)

    @classmethod
    def _check_option_types(cls, name: str, params: dict[str, tuple[Any, ...]]
                            ) -> dict[str, tuple[Any, ...]]:
        """Name the option in any unknown-option or wrong-type mistake; ints given for
        float options become floats."""
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        converted = dict(params)
        for option, values in params.items():
            if option not in types:
                raise SpecError(f"{name}: unknown option '{option}' (options: "
                                f"{', '.join(types)})")
            expected = _OPTION_TYPES.get(str(types[option]))
            if expected is None:
                continue
            if len(values) != 1 or not _is_instance(values[0], expected):
                given = ",".join(str(v) for v in values) or "nothing"
                raise SpecError(f"{name}: option {option} must be {expected.__name__}, "
                                f"got {given}")
            if expected is float:
                converted[option] = (float(values[0]),)
        return converted

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SpecError naming the option when a value is out of range: negative,
        not finite, or (ints) beyond MAX_OPTION_INT."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                raise SpecError(f"{self.name}: option {f.name} must be a finite number, "
                                f"got {value}")
            if value < 0:
                raise SpecError(f"{self.name}: option {f.name} must be >= 0, got {value}")
            if isinstance(value, int) and value > MAX_OPTION_INT:
                raise SpecError(f"{self.name}: option {f.name} must be <= {MAX_OPTION_INT:,} "
                                f"(2^31 - 1), got {value}")

    def config(self) -> dict[str, Any]:
        """Every hardware parameter, for reports."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def target_string(self) -> str:
        """The target in option syntax, with every field, e.g. `systolic{rows=32 ...}`."""
        return str(ArgSpec(self.name, {k: (v,) for k, v in self.config().items()}))

    def accounting(self) -> dict[str, Any]:
        """What this target's bytes and energy count, for reports and `compare`."""
        pj = getattr(self, f"{self.dram_level}_pj_per_byte", None)
        return {"dram_level": self.dram_level, "dram_model": self.dram_model,
                "weights": "preloaded on chip" if self.weights_preloaded else "read off-chip",
                "dram_pj_per_byte": pj, "word_bytes": getattr(self, "word_bytes", None)}

    def prepare(self) -> str:
        """Passes a kernel needs before this hardware can run it (e.g. 2:4 pruning for a
        sparse tensor core); `sparsec compare` appends them to the user's pipeline."""
        return ""

    def label(self) -> str:
        """Short name for tables: the target with only the options that differ from
        the dataclass defaults, e.g. `systolic{rows=16 dataflow=ws}`."""
        changed = {f.name: (getattr(self, f.name),) for f in dataclasses.fields(self)
                   if f.default is not dataclasses.MISSING
                   and getattr(self, f.name) != f.default}
        return str(ArgSpec(self.name, changed))

    def require(self, condition: bool, option: str, rule: str) -> None:
        """Fail with a message naming the option unless `condition` holds."""
        if not condition:
            raise SpecError(f"{self.name}: option {option} {rule}")


def parse_target_string(text: str) -> ArgSpec:
    """Parse `name{a=1 b=x}` into an ArgSpec, with a one-line message on bad syntax."""
    try:
        return parse_spec(text)
    except ArgSpecParseError as err:
        detail = str(err).strip().splitlines()[-1].strip()
        raise SpecError(f"bad target '{text}': {detail}") from None
