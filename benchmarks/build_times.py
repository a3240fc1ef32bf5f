#!/usr/bin/env python3
"""Wall times of a cold build, a no-op rebuild, and a rebuild restored from the cache, in one invocation.

    python benchmarks/build_times.py [--remote] [named targets, default: libs] [name=value ...]

Uses a fresh build directory and a fresh SCons cache (both temporary) so the first build runs every
action; downloads and toolchains come from the user cache (fetched first, not timed). Prints seconds
and each figure as a ratio of the cold build.

``--remote`` measures the shared remote cache instead: it starts nginx (WebDAV PUT, as the tests do) on
loopback, makes the cold build read-write against it (so it also uploads), then empties the build directory
*and* the local cache and builds again read-only: every artifact comes from the remote cache.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from scons_run import REPO, artifact_digests, scons


def timed_scons(*args: str) -> tuple[float, int, str]:
    """Run scons; return its wall time, how many sandboxed actions it ran, and its output."""
    started = time.monotonic()
    output = scons(*args)
    actions = sum(line.startswith("[start] build ") for line in output.splitlines())
    return time.monotonic() - started, actions, output


def local(targets: list[str], variables: list[str]) -> None:
    """Cold build, no-op, restore from the local cache."""
    with tempfile.TemporaryDirectory(prefix="build-times-") as tmp:
        build, cache = Path(tmp) / "build", Path(tmp) / "cache"
        common = [*variables, f"build_dir={build}", f"scons_cache={cache}", f"dist_dir={Path(tmp) / 'dist'}"]
        scons("fetch", "toolchain", *common)
        cold, cold_actions, _ = timed_scons(*targets, *common)
        built = artifact_digests(build, build)
        noop, noop_actions, _ = timed_scons(*targets, *common)
        shutil.rmtree(build)
        restored, restore_actions, _ = timed_scons(*targets, *common)
        same = artifact_digests(build, build) == built
    print(f"targets: {' '.join(targets)} {' '.join(variables)}")
    print(f"cold build          {cold:8.1f} s   1.000   {cold_actions} actions run")
    print(f"no-op rebuild       {noop:8.1f} s   {noop / cold:.3f}   {noop_actions} actions run")
    print(f"restore from cache  {restored:8.1f} s   {restored / cold:.3f}   {restore_actions} actions run")
    report(len(built), same, "the cache")


def remote(targets: list[str], variables: list[str]) -> None:
    """Cold build uploading to a loopback nginx, then a restore from it into an empty build and local cache."""
    sys.path.insert(0, str(REPO / "tests"))
    from webdav_server import start_webdav_server  # type: ignore[import-not-found]  # tests/ is added above

    with tempfile.TemporaryDirectory(prefix="build-times-remote-") as tmp:
        server = start_webdav_server(Path(tmp) / "nginx")
        try:
            root = Path(tmp)
            build, dist = root / "build", root / "dist"
            common = [*variables, f"build_dir={build}", f"dist_dir={dist}"]
            scons("fetch", "toolchain", *common, f"scons_cache={root / 'fetch-cache'}")
            common.append(f"remote_cache={server.url}")
            writing = [*targets, *common, f"scons_cache={root / 'cache-1'}", "remote_cache_mode=rw"]
            cold, cold_actions, _ = timed_scons(*writing)
            built = artifact_digests(root, build, dist)
            stored = sum(p.stat().st_size for p in (server.store / "cas").iterdir())
            shutil.rmtree(build)
            shutil.rmtree(dist, ignore_errors=True)
            reading = [*targets, *common, f"scons_cache={root / 'cache-2'}", "remote_cache_mode=ro"]
            restored, restore_actions, output = timed_scons(*reading)
            again = artifact_digests(root, build, dist)
        finally:
            server.stop()
    hits = re.search(r"remote cache .*: (\d+) hits, (\d+) misses", output)
    print(f"targets: {' '.join(targets)} {' '.join(variables)} (remote cache: nginx on loopback)")
    print(f"cold build, uploading        {cold:8.1f} s   1.000   {cold_actions} actions run")
    print(
        f"restore from remote cache    {restored:8.1f} s   {restored / cold:.3f}   {restore_actions} actions run, "
        f"{hits.group(1) if hits else '?'} remote hits, {stored / 1e6:.1f} MB"
    )
    report(len(built), again == built, "the remote cache")


def report(count: int, same: bool, where: str) -> None:
    verdict = "byte-identical to" if same else "DIFFERENT from"
    print(f"{count} artifacts restored from {where}, {verdict} the cold build's")
    if not same:
        sys.exit(1)


def main() -> None:
    arguments = sys.argv[1:]
    use_remote = "--remote" in arguments
    arguments = [a for a in arguments if a != "--remote"]
    targets = [a for a in arguments if "=" not in a] or ["libs"]
    variables = [a for a in arguments if "=" in a]
    (remote if use_remote else local)(targets, variables)


if __name__ == "__main__":
    main()
