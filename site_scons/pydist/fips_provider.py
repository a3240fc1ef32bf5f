"""Which OpenSSL FIPS provider a distribution ships (the recipe that builds one from its own pristine tree is in
:mod:`pydist.openssl`).

By default the provider is the one OpenSSL's own tree builds beside libcrypto (``openssl.py``): FIPS-capable, but
the 3.5 provider holds no CMVP certificate. ``fips_provider=X.Y.Z`` names another provider version, pinned in the
sources lock as ``openssl-fips``. It is built from its own source tree the way OpenSSL's README-FIPS and the
provider's Security Policy prescribe: ``./Configure enable-fips``, ``make``, ``make install_fips``, with no patch,
none of this project's compiler or linker flags and no other step that touches the tree. Its ``fips.so`` and the
``fipsmodule.cnf`` its own ``install_fips`` wrote ship instead of the 3.5.7 ones; libcrypto stays the one Python
links, because a provider reaches libcrypto only through the core's dispatch table (a 3.0 or 3.1 provider runs
under 3.5, as README-FIPS's "two source trees" layout does).

Only the target name is added to ``Configure``: the Security Policy's command relies on Configure guessing the
build machine, which is the wrong answer for a cross build. Configure needs the compiler named (``CC``), as
every build without a system ``gcc`` does. On macOS the module must be signed before its MAC is taken and linked
with an export list (``platforms/macos.py``): steps the Security Policy does not have, so a separate provider tree
is refused there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hermetic.content_store import ContentStore, sha256_file
from hermetic.errors import ConfigError
from hermetic.lock import SourcesLock
from hermetic.pins import Pin, load_toml
from pydist.paths import PINS_SCHEMA
from pydist.platforms import Platform

# The sources lock's name for a provider's own source tree (a second name, so "openssl" keeps naming libcrypto's).
PIN_NAME = "openssl-fips"
# The named target that builds the shipped provider alone.
TARGET = "fips-provider"
# Bump when the recipe changes in a way that changes the artifact.
PROVIDER_RULE_VERSION = 1
# The validated provider version (its source is a digest-only entry of the lock: sha256 known, size not).
CMVP_3_1_2 = "3.1.2"


@dataclass(frozen=True)
class Certificate:
    """A CMVP certificate of an OpenSSL FIPS provider version.

    Attributes:
        number: (str) the certificate number, e.g. ``4985``.
        standard: (str) ``FIPS 140-2`` or ``FIPS 140-3``.
        status: (str) ``active``, or ``historical`` (usable only for systems already in use).
    """

    number: str
    standard: str
    status: str


# OpenSSL FIPS provider versions with a CMVP certificate (reference/fips-facts.md, anchors-2026-11.md §4.4). The
# FIPS 140-2 certificates of the 3.0 providers moved to the historical list on 2026-09-22.
CMVP_CERTIFICATES: dict[str, Certificate] = {
    "3.0.0": Certificate("4282", "FIPS 140-2", "historical"),
    "3.0.8": Certificate("4282", "FIPS 140-2", "historical"),
    "3.0.9": Certificate("4811", "FIPS 140-2", "historical"),
    CMVP_3_1_2: Certificate("4985", "FIPS 140-3", "active"),
}


@dataclass(frozen=True, kw_only=True)
class FipsProvider:
    """The FIPS provider one build ships.

    Attributes:
        version: (str) the provider's OpenSSL version.
        libcrypto: (str) the version of the OpenSSL that Python links and that loads the provider.
        pin: (Pin | None) the provider's own source tree; None when it is built in libcrypto's tree.
    """

    version: str
    libcrypto: str
    pin: Pin | None = None

    @property
    def own_tree(self) -> bool:
        """Whether the provider is built from a source tree of its own (not libcrypto's)."""
        return self.pin is not None

    @property
    def certificate(self) -> Certificate | None:
        """The CMVP certificate of this provider version, active or historical, if it has one."""
        return CMVP_CERTIFICATES.get(self.version)

    @property
    def validated(self) -> bool:
        """Whether this provider version holds an active CMVP certificate (a fact about the version)."""
        return self.certificate is not None and self.certificate.status == "active"

    def record(self) -> dict[str, Any]:
        """What PYTHON.json and the provenance say about the shipped provider."""
        certificate = self.certificate
        return {
            "version": self.version,
            "libcrypto_version": self.libcrypto,
            "source_tree": "own" if self.own_tree else "libcrypto",
            "validated": self.validated,
            "certificate": certificate.number if certificate else None,
            "certificate_standard": certificate.standard if certificate else None,
            "certificate_status": certificate.status if certificate else None,
        }


def select(
    lock: SourcesLock,
    requested: str | None,
    platform: Platform,
    *,
    distdirs: Sequence[Path] = (),
    downloads: ContentStore | None = None,
) -> FipsProvider:
    """The provider ``fips_provider=`` asks for: libcrypto's own when it is empty or libcrypto's version, else a
    pinned ``openssl-fips`` version, or one pinned by digest only (3.1.2), whose tarball must then be in one of
    `distdirs` or in `downloads`. Raises ConfigError (one line: cause and fix) for anything else."""
    libcrypto = lock.get("openssl").version
    if not requested or requested == libcrypto:
        return FipsProvider(version=libcrypto, libcrypto=libcrypto)
    pinned = lock.versions(PIN_NAME)
    by_digest = digest_only_sources(lock)
    if requested not in pinned and requested not in by_digest:
        valid = ", ".join([f"{libcrypto} (default)", *pinned, *by_digest])
        raise ConfigError(
            f"fips_provider={requested} is not a pinned FIPS provider; valid: {valid}",
            hint=f"pin its source as {PIN_NAME} in {lock.path.name}, or choose one of those",
        )
    if platform.toolchain.os != "linux":
        raise ConfigError(
            f"fips_provider={requested} cannot be built for {platform.triple}",
            hint="a macOS provider must be signed before its MAC and linked with an export list, steps its "
            "Security Policy does not allow; leave fips_provider= empty",
        )
    if requested in pinned:
        pin = lock.get(PIN_NAME, requested)
    else:
        pin = complete_digest_only(by_digest[requested], distdirs, downloads)
    return FipsProvider(version=requested, libcrypto=libcrypto, pin=pin)


def digest_only_sources(lock: SourcesLock) -> dict[str, dict[str, Any]]:
    """The lock's ``[[digest_only_source]]`` entries of the provider, by version: pinned by upstream's sha256
    without a size, so never downloaded (see ``complete_digest_only``)."""
    data = load_toml(lock.path, PINS_SCHEMA, "sourcesLock")
    return {str(e["version"]): e for e in data.get("digest_only_source", []) if e["name"] == PIN_NAME}


def complete_digest_only(entry: dict[str, Any], distdirs: Sequence[Path], downloads: ContentStore | None) -> Pin:
    """The full pin of a source pinned by digest only: its file, found in a distdir by name or in the download
    cache by digest, must have the pinned sha256, which makes its size a fact about those bytes."""
    filename, sha256 = entry["filename"], entry["sha256"]
    candidates = [directory / filename for directory in distdirs]
    if downloads is not None:
        candidates.append(downloads.path_for(sha256))
    for path in candidates:
        if not path.is_file():
            continue
        actual = sha256_file(path)
        if actual != sha256:
            raise ConfigError(
                f"{path} has sha256 {actual}, not upstream's {sha256} for {filename}",
                hint=f"that is not upstream's {filename}: download it again from {entry['urls'][0]}",
            )
        return Pin.from_mapping({**entry, "size": path.stat().st_size})
    where = ", ".join(str(d) for d in distdirs) or "none given"
    raise ConfigError(
        f"fips_provider={entry['version']} needs {filename} (sha256 {sha256}), pinned by digest only and never "
        f"downloaded; distdir: {where}",
        hint=f"download it from {entry['urls'][0]} elsewhere and pass its directory as distdir=DIR",
    )
