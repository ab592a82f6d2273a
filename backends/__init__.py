"""Modeled accelerators, one folder each; `get_backend(name)` loads one by target name.

Each backend package keeps its `__init__` empty: `<package>.spec` holds the options, presets
and summary (cheap to import, for `sparsec targets`), `<package>.target` the `BACKEND`
(lowering and machine, which import xDSL's interpreter and rewriting machinery).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparsec.backends.common.backend import Backend
    from sparsec.backends.common.spec import AcceleratorSpec

BACKEND_PACKAGES: dict[str, str] = {
    "systolic": "sparsec.backends.systolic",
    "stc": "sparsec.backends.stc",
    "eie": "sparsec.backends.eie",
    "asadi": "sparsec.backends.asadi",
    "hottiles": "sparsec.backends.hottiles",
    "sparc": "sparsec.backends.sparc",
    "sigma": "sparsec.backends.sigma",
    "bitllm": "sparsec.backends.bitllm",
    "bitwave": "sparsec.backends.bitwave",
}
"""Target name -> package with a `target` module (its `BACKEND`) and a `spec` module."""


class UnknownTargetError(ValueError):
    """A target name no backend answers to."""


def _package(name: str) -> str:
    package = BACKEND_PACKAGES.get(name)
    if package is None:
        known = ", ".join(BACKEND_PACKAGES)
        raise UnknownTargetError(f"unknown target '{name}' (known: {known}); "
                                 "`sparsec targets` lists them with their options")
    return package


def get_backend(name: str) -> Backend:
    return importlib.import_module(f"{_package(name)}.target").BACKEND


def all_backends() -> list[Backend]:
    return [get_backend(name) for name in BACKEND_PACKAGES]


def spec_class(name: str) -> type[AcceleratorSpec]:
    """The target's option class alone (options, presets, summary), without its lowering
    and machine: what `sparsec targets` needs, at a fraction of the import time."""
    module = importlib.import_module(f"{_package(name)}.spec")
    classes = [value for value in vars(module).values()
               if isinstance(value, type) and getattr(value, "name", None) == name
               and hasattr(value, "presets")]
    if len(classes) != 1:
        raise LookupError(f"{module.__name__} must define exactly one spec class named {name!r}")
    return classes[0]


def get_numerics(name: str, dtype: str | None = None, spec: Any = None) -> Any:
    """The whole-model `Numerics` (sparsec.tensors.hooks) target `name` computes with, from
    its package's `numerics.numerics(dtype)` (`numerics(dtype, spec)` when a spec of the
    target's options is given); LookupError when the backend publishes none."""
    package = _package(name)
    try:
        module = importlib.import_module(f"{package}.numerics")
    except ModuleNotFoundError as err:
        if err.name != f"{package}.numerics":
            raise
        raise LookupError(f"target '{name}' publishes no whole-model numerics "
                          f"({package}.numerics)") from None
    if spec is None:
        return module.numerics(dtype)
    try:
        return module.numerics(dtype, spec=spec)
    except TypeError:
        raise ValueError(f"target '{name}' takes no options in whole-model numerics") from None
