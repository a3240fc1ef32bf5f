"""Build option sets (``pgo+lto``, ``freethreaded+pgo+lto``, ``noopt``, ...), parsed once into a typed value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hermetic.errors import ConfigError

Optimization = Literal["pgo+lto", "noopt", "debug"]

_OPTIMIZATIONS: tuple[Optimization, ...] = ("pgo+lto", "noopt", "debug")
_RELEASE: Optimization = "pgo+lto"


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """What ``options=`` asks for.

    Attributes:
        optimization: ("pgo+lto" | "noopt" | "debug") how the interpreter is compiled.
        freethreaded: (bool) the GIL is disabled (``--disable-gil``, Python 3.13+).
    """

    optimization: Optimization
    freethreaded: bool = False

    @classmethod
    def parse(cls, text: str) -> BuildOptions:
        """Read ``options=`` (e.g. ``freethreaded+pgo+lto``); a ConfigError lists the valid sets."""
        freethreaded = text.startswith("freethreaded+")
        optimization = text.removeprefix("freethreaded+")
        if optimization not in _OPTIMIZATIONS:
            raise ConfigError(f"options={text} is not a supported option set", hint=f"valid: {', '.join(ALL)}")
        return cls(optimization=optimization, freethreaded=freethreaded)

    def __str__(self) -> str:
        return f"freethreaded+{self.optimization}" if self.freethreaded else self.optimization

    @property
    def pgo(self) -> bool:
        """Profile-guided optimization."""
        return self.optimization == "pgo+lto"

    @property
    def lto(self) -> bool:
        """Link-time optimization."""
        return self.optimization == "pgo+lto"

    @property
    def debug(self) -> bool:
        """A debug build (``--with-pydebug``, ``-Og``)."""
        return self.optimization == "debug"

    @property
    def release(self) -> bool:
        """The option sets releases are made of (python-build-standalone's pgo+lto)."""
        return self.optimization == _RELEASE

    @property
    def install_only_flavor(self) -> str:
        """What install_only archive names say about these options: nothing for release builds (as
        python-build-standalone names them), ``freethreaded`` for free-threaded ones, the whole set otherwise,
        so a noopt build never passes for a release one."""
        if self.release:
            return "freethreaded" if self.freethreaded else ""
        return str(self)


# Release builds first, then the development ones.
ALL = tuple(str(BuildOptions(optimization=o, freethreaded=f)) for o in _OPTIMIZATIONS for f in (False, True))
RELEASE = tuple(o for o in ALL if BuildOptions.parse(o).release)
DEFAULT = str(BuildOptions(optimization=_RELEASE))
