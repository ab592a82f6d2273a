"""The textual IR of a module, printed once and fast, byte-identical to `str(module)`.

xDSL's `Printer` prints every attribute afresh through generic dispatch; a spec of
thousands of kernels repeats the same few attributes (`tensor<8x8xf32>`, `64 : i64`,
`array<i64: 0, 8>`) tens of thousands of times, and printing was the largest stage of
compiling one (issue 10, item 13). `FastPrinter` keeps xDSL's printer and changes two
things that cannot change the text:

- an attribute is printed once per printer: its text is rendered by a plain xDSL
  printer with the same flags into a string and reused for every equal attribute
  (attributes are immutable values; equal attributes print equally). An attribute
  whose text spans lines, registers a dialect resource, or cannot be hashed is printed
  the ordinary way, every time;
- text goes to the stream with `write` (xDSL calls the `print` builtin per piece).

`tests/compiler/test_compile_speed.py` holds both to `str(module)` byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from typing import IO

from xdsl.ir import Attribute, Operation
from xdsl.printer import Printer


@dataclass(eq=False, repr=False)
class FastPrinter(Printer):
    """An xDSL `Printer` that memoises attribute text (see the module docstring)."""

    def __post_init__(self) -> None:
        self._attribute_text: dict[Attribute, str | None] = {}
        self._by_identity: dict[int, tuple[Attribute, str | None]] = {}
        """The same attribute object seen again (shared instances are common) skips the
        recursive hash; the entry holds the attribute, so its id cannot be reused."""
        self._write = self.stream.write if self.stream is not None else None

    def print_string(self, text: str, *, indent: int | None = None) -> None:
        if "\n" in text or self._write is None:
            super().print_string(text, indent=indent)
            return
        self._current_column += len(text)
        self._write(text)

    def print_attribute(self, attribute: Attribute) -> None:
        seen = self._by_identity.get(id(attribute))
        if seen is not None and seen[0] is attribute:
            text = seen[1]
        else:
            try:
                text = self._attribute_text.get(attribute, "")
            except TypeError:  # an attribute holding an unhashable value
                super().print_attribute(attribute)
                return
            if text == "":
                text = self._render_alone(attribute)
                self._attribute_text[attribute] = text
            self._by_identity[id(attribute)] = (attribute, text)
        if text is None:
            super().print_attribute(attribute)
            return
        self.print_string(text)

    def _render_alone(self, attribute: Attribute) -> str | None:
        """The attribute's text from a fresh xDSL printer with this printer's flags, or
        None when it cannot be reused (several lines, or it registered a resource)."""
        out = StringIO()
        alone = Printer(stream=out, print_generic_format=self.print_generic_format,
                        print_properties_as_attributes=self.print_properties_as_attributes,
                        print_debuginfo=self.print_debuginfo)
        alone.print_attribute(attribute)
        text = out.getvalue()
        if "\n" in text or alone._dialect_resources or not text:
            return None
        return text


def ir_text(op: Operation) -> str:
    """`str(op)`, printed by `FastPrinter`."""
    out = StringIO()
    FastPrinter(stream=out).print_op(op)
    return out.getvalue()


def write_ir(op: Operation, stream: IO[str]) -> None:
    """Print `op` to `stream` (what `print(op, file=stream)` writes, newline included)."""
    stream.write(ir_text(op))
    stream.write("\n")
