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
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from xdsl.utils.arg_spec import ArgSpec, ArgSpecConvertible, parse_spec
from xdsl.utils.exceptions import ArgSpecParseError


class SpecError(ValueError):
    """A bad target or option value; the message names the option and what is allowed."""


@dataclass(frozen=True)
class AcceleratorSpec(ArgSpecConvertible):
    """Hardware parameters of one accelerator; subclasses add fields and presets."""

    name: ClassVar[str]
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    """Named configurations: field values overriding the dataclass defaults."""

    preset: str = "default"

    @classmethod
    def from_spec(cls, spec: ArgSpec) -> Self:
        """Build from `name{opts}`: the preset's values, then the options given."""
        params = spec.normalize_parameter_names().parameters
        try:
            parsed = super().from_spec(ArgSpec(cls.name, dict(params)))
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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise SpecError naming the option when a value is out of range."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise SpecError(f"{self.name}: option {f.name} must be >= 0, got {value}")

    def config(self) -> dict[str, Any]:
        """Every hardware parameter, for reports."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def target_string(self) -> str:
        """The target in option syntax, with every field, e.g. `systolic{rows=32 ...}`."""
        return str(ArgSpec(self.name, {k: (v,) for k, v in self.config().items()}))

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
