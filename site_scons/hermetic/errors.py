"""Errors a person can act on: one line with the cause and the fix, and a stable exit code.

Exit codes of ``scons`` and ``python -m pydist``: 0 success; 1 any other failure (a check found violations, a
host error such as a full disk); 2 a wrong command-line value, an unsupported host, a bad configuration;
3 a malformed lock or pin file; 4 a file that does not match its pin; 5 a pinned file that could not be
fetched (or a full or unwritable download cache); 6 a toolchain problem; 7 a failed build step; 8 an unsafe
archive; 9 a corrupt or truncated archive; 10 a release the release tool refuses; 11 a GitHub API failure;
12 a distribution that cannot be assembled from its build; 128 + N when the build was asked to stop by
signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP).
"""

from __future__ import annotations

from hermetic import redact


class HermeticError(Exception):
    """Base of every error the build reports to the user (never shown with a traceback)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # Masked here, once, so no error the user sees or a log records can carry a URL's credentials.
        self.message = redact.text(message)
        self.hint = None if hint is None else redact.text(hint)
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message and the fix, joined into the single line the user sees."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class ConfigError(HermeticError):
    """A wrong command-line value, an unsupported host, or a bad configuration file."""

    exit_code = 2


class LockError(HermeticError):
    """The sources lock or a toolchain pin file is malformed or inconsistent."""

    exit_code = 3


class IntegrityError(HermeticError):
    """A downloaded or cached file does not match its pinned size or sha256."""

    exit_code = 4


class FetchError(HermeticError):
    """A pinned file could not be obtained from any location."""

    exit_code = 5


class CacheError(FetchError):
    """The shared download cache is full or not writable, so a pinned file cannot be stored there."""


class ToolchainError(HermeticError):
    """A toolchain could not be materialized or does not fit the host."""

    exit_code = 6


class ActionError(HermeticError):
    """A sandboxed build step failed."""

    exit_code = 7


class SandboxError(ActionError):
    """The sandbox of a build step could not be set up (the step never started)."""


class UnsafeArchiveError(HermeticError):
    """An archive member would be written outside its destination directory."""

    exit_code = 8


class CorruptArchiveError(HermeticError):
    """An archive cannot be read to its end: truncated, damaged, or not an archive at all (exit code 9)."""

    exit_code = 9


class ArchiveTooLargeError(CorruptArchiveError):
    """An archive expands past the limit its reader set, as a decompression bomb does (exit code 9)."""


class CancelledError(HermeticError):
    """The build was asked to stop (SIGINT, SIGTERM or SIGHUP) and stopped: exit code 128 + the signal's number
    (130, 143 or 129), set by ``hermetic.cancel.stopped``."""

    exit_code = 130
