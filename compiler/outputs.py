"""Every file sparsec writes goes through here: all or nothing, never over an input.

A command declares its outputs as it goes (`Outputs.text`, `.file`, `.program`) and
`commit()`s them once its work has succeeded. Commit writes each output under a hidden
temporary name in the destination folder, then renames them all into place while
SIGINT/SIGTERM are held back and the folder is locked (`flock`), so

* a failing or interrupted command leaves no output and no temporary file behind;
* a program's `NAME.mlir` and `NAME.npz` appear together: two compiles racing on one
  `-o` leave one compile's pair, never a mix (and the IR names the bundle's SHA-256, so
  a mix made any other way is refused at load);
* an output that would overwrite one of the command's inputs, a repeated output, or `-`
  where no stream is meant is refused before any work is written;
* files get the permissions the umask allows (temporary files are created 0600);
* errors name the user's path, not the temporary one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sparsec.compiler.guards import CompileError

Writer = Callable[[Path], None]
"""Writes one output's content to the (temporary) path it is given."""


class OutputError(CompileError):
    """An output sparsec refuses to write, or cannot."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new file under the current umask (what `open()` would give)."""
    return 0o666 & ~_umask()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class _Output:
    paths: tuple[Path, ...]
    """Destinations, renamed into place in this order."""
    write: Callable[[tuple[Path, ...]], None]
    """Writes every destination's content to the temporary paths it is given."""


@dataclass
class Outputs:
    """The outputs of one command, written together by `commit()`."""

    inputs: list[Path] = field(default_factory=list)
    pending: list[_Output] = field(default_factory=list)

    def protect(self, *paths: str | Path | None) -> None:
        """Files the command reads: no output may replace them."""
        self.inputs += [Path(p) for p in paths if p is not None and str(p) != "-"]

    def precheck(self, *items: tuple[str | Path | None, str]) -> None:
        """Refuse bad output paths (`(path, what)`; None skipped) before any work, so a
        mistake costs nothing; the outputs are declared later, when their content exists.
        A `.mlir` program path brings its `.npz`."""
        trial = Outputs(inputs=list(self.inputs))
        for path, what in items:
            if path is None:
                continue
            paths: list[str | Path] = [path]
            if what == "compiled program" and str(path) not in ("-", ""):
                if Path(path).suffix != ".mlir":
                    raise OutputError(f"{path}: a compiled program is written as NAME.mlir "
                                      "(plus NAME.npz); give -o a .mlir path")
                paths.append(Path(path).with_suffix(".npz"))
            trial.pending.append(_Output(tuple(trial._claim(paths, what)), lambda _: None))

    def text(self, path: str | Path, text: str, what: str = "output") -> Path:
        """A text file."""
        return self.file(path, lambda tmp: tmp.write_text(text), what)

    def file(self, path: str | Path, write: Writer, what: str = "output") -> Path:
        """A file whose content `write(temporary_path)` produces."""
        (dest,) = self._claim([path], what)
        self.pending.append(_Output((dest,), lambda tmps: write(tmps[0])))
        return dest

    def program(self, mlir_path: str | Path, write_pair: Callable[[Path, Path], None]
                ) -> tuple[Path, Path]:
        """`NAME.mlir` and `NAME.npz`, renamed bundle first: `write_pair(mlir_tmp,
        npz_tmp)` writes the bundle, then the IR naming its hash."""
        mlir_path = Path(mlir_path)
        if mlir_path.suffix != ".mlir":
            raise OutputError(f"{mlir_path}: a compiled program is written as NAME.mlir "
                              "(plus NAME.npz); give -o a .mlir path")
        dest_mlir, dest_npz = self._claim([mlir_path, mlir_path.with_suffix(".npz")],
                                          "compiled program")
        self.pending.append(_Output((dest_npz, dest_mlir),
                                    lambda tmps: write_pair(tmps[1], tmps[0])))
        return dest_mlir, dest_npz

    def _claim(self, paths: Iterable[str | Path], what: str) -> list[Path]:
        claimed = []
        for raw in paths:
            if str(raw) in ("-", ""):
                raise OutputError(f"'{raw}' is not a file name for the {what} (only "
                                  "`compile -o -` prints to stdout)")
            path = Path(raw)
            if path.is_dir():
                raise OutputError(f"{path}: is a directory, not a file for the {what}")
            for known in self.inputs:
                if _same_file(path, known):
                    raise OutputError(f"{path}: the {what} would overwrite the input "
                                      f"{known}; choose another output name")
            for output in self.pending:
                if any(_same_file(path, other) for other in output.paths):
                    raise OutputError(f"{path}: named as two outputs of this command")
            if not path.parent.is_dir() and str(path.parent):
                raise OutputError(f"{path}: cannot write the {what}: folder "
                                  f"{path.parent} does not exist")
            claimed.append(path)
        return claimed

    def commit(self) -> None:
        """Write every output under a temporary name, then rename all into place."""
        temps: list[tuple[Path, Path]] = []
        try:
            for output in self.pending:
                tmps = tuple(_temporary(dest) for dest in output.paths)
                temps += list(zip(tmps, output.paths, strict=True))
                try:
                    output.write(tmps)
                except OSError as err:
                    raise OutputError(f"{output.paths[-1]}: cannot write: "
                                      f"{err.strerror or err}") from None
            mode = file_mode()
            for tmp, _ in temps:
                os.chmod(tmp, mode)
            with _signals_held(), _folders_locked({dest.parent for _, dest in temps}):
                for tmp, dest in temps:
                    try:
                        os.replace(tmp, dest)
                    except OSError as err:
                        raise OutputError(f"{dest}: cannot write: {err.strerror or err}"
                                          ) from None
        finally:
            for tmp, _ in temps:
                tmp.unlink(missing_ok=True)
            self.pending.clear()


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        return False
    return a.resolve() == b.resolve()


def _temporary(dest: Path) -> Path:
    """A new empty hidden file next to `dest`, keeping its suffix (numpy and matplotlib
    pick formats by suffix)."""
    try:
        fd, name = tempfile.mkstemp(dir=dest.parent if str(dest.parent) else ".",
                                    prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}")
    except OSError as err:
        raise OutputError(f"{dest}: cannot write: {err.strerror or err}") from None
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while outputs are renamed; delivered right after."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def _folders_locked(folders: set[Path]) -> Iterator[None]:
    """An exclusive `flock` on each destination folder, so two sparsec processes never
    interleave their renames (a pair from each)."""
    fds = []
    try:
        for folder in sorted(str(f) or "." for f in folders):
            try:
                fd = os.open(folder, os.O_RDONLY)
            except OSError:
                continue  # best effort: the IR's bundle hash still catches a mixed pair
            fds.append(fd)
            with contextlib.suppress(OSError):  # a filesystem without flock
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        for fd in fds:
            os.close(fd)
