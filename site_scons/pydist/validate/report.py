"""Violations and the report that collects them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule in one file.

    Attributes:
        file: (str) the archive member (or the archive itself) that breaks the rule.
        rule: (str) a stable rule id, e.g. ``elf.glibc-floor``.
        message: (str) what is wrong, in one line.
    """

    file: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: [{self.rule}] {self.message}"


@dataclass
class Report:
    """Everything one validation found, plus what it looked at."""

    archives: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    checked_files: int = 0
    checked_elf: int = 0
    checked_macho: int = 0
    # The highest GLIBC_x.y each ELF file needs ("2.17"), by member.
    glibc_versions: dict[str, str] = field(default_factory=dict)

    def add(self, file: str, rule: str, message: str) -> None:
        """Record a violation."""
        self.violations.append(Violation(file, rule, message))

    @property
    def ok(self) -> bool:
        """Whether nothing was found."""
        return not self.violations

    def highest_glibc(self) -> tuple[str, str] | None:
        """(version, member) of the highest GLIBC_x.y any ELF file needs, or None without glibc symbols."""
        if not self.glibc_versions:
            return None
        member = max(self.glibc_versions, key=lambda m: tuple(int(p) for p in self.glibc_versions[m].split(".")))
        return self.glibc_versions[member], member

    def summary(self) -> str:
        """One line: how much was checked, the highest glibc symbol version needed, how many violations."""
        highest = self.highest_glibc()
        glibc = f", needing at most GLIBC_{highest[0]} ({highest[1]})" if highest else ""
        return (
            f"{len(self.archives)} archive(s), {self.checked_files} files ({self.checked_elf} ELF, "
            f"{self.checked_macho} Mach-O){glibc}: {len(self.violations)} violation(s)"
        )
