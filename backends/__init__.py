"""Modeled accelerators, one folder each; `get_backend(name)` loads one by target name."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sparsec.backends.common.backend import Backend

BACKEND_MODULES: dict[str, str] = {
    "systolic": "sparsec.backends.systolic",
    "stc": "sparsec.backends.stc",
    "eie": "sparsec.backends.eie",
    "asadi": "sparsec.backends.asadi",
    "hottiles": "sparsec.backends.hottiles",
    "sparc": "sparsec.backends.sparc",
    "sigma": "sparsec.backends.sigma",
    "bitwave": "sparsec.backends.bitwave",
}
"""Target name -> module whose `BACKEND` attribute describes the backend."""


class UnknownTargetError(ValueError):
    """A target name no backend answers to."""


def get_backend(name: str) -> Backend:
    module = BACKEND_MODULES.get(name)
    if module is None:
        known = ", ".join(BACKEND_MODULES)
        raise UnknownTargetError(f"unknown target '{name}' (known: {known}); "
                                 "`sparsec targets` lists them with their options")
    return importlib.import_module(module).BACKEND


def all_backends() -> list[Backend]:
    return [get_backend(name) for name in BACKEND_MODULES]
