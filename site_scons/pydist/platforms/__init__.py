"""One platform object per target: everything that differs between targets lives in its module.

A :class:`~pydist.platforms.base.Platform` is made from ``toolchains/<triple>.toml`` and the build host. The
rules ask it (object format, FIPS module name, how the interpreter finds libpython, how dependency symbols are
hidden, how binaries are stripped, which sandbox runs the actions, which library recipes the target uses, how
the target's programs run during the build) instead of testing the target's name. A new target OS is a new
module here, registered in ``_CLASSES``.
"""

from __future__ import annotations

from pathlib import Path

from hermetic.toolchain import host_platform, load_toolchain
from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR
from pydist.platforms.base import Platform
from pydist.platforms.linux import LinuxPlatform
from pydist.platforms.macos import MacOSPlatform

_CLASSES: dict[str, type[Platform]] = {"linux": LinuxPlatform, "macos": MacOSPlatform}


def load_platform(triple: str, build_host: str | None = None, toolchains_dir: Path = TOOLCHAINS_DIR) -> Platform:
    """The platform of `triple` as built on `build_host` (``<arch>-<os>``; default: this machine)."""
    toolchain = load_toolchain(toolchains_dir, triple, PINS_SCHEMA, build_host=build_host or host_platform())
    return _CLASSES[toolchain.os](toolchain=toolchain, build_host=build_host or host_platform())


__all__ = ["LinuxPlatform", "MacOSPlatform", "Platform", "load_platform"]
