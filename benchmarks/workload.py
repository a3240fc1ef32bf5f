"""A pure-Python workload for comparing interpreters (no I/O, no C extensions doing the work).

Prints the best of N timings of each kernel and their sum, as JSON, for the interpreter running it.
"""

from __future__ import annotations

import json
import sys
import time


def nbody(steps: int = 100000) -> float:
    bodies = [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 39.47],
        [4.84, -1.16, -0.10, 0.60, 2.81, -0.02, 0.037],
        [8.34, 4.12, -0.40, -1.01, 1.82, 0.008, 0.011],
        [12.89, -15.11, -0.22, 1.08, 0.86, -0.01, 0.0017],
        [15.37, -25.91, 0.17, 0.97, 0.59, -0.03, 0.002],
    ]
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    for _ in range(steps):
        for b1, b2 in pairs:
            dx, dy, dz = b1[0] - b2[0], b1[1] - b2[1], b1[2] - b2[2]
            mag = 0.01 * (dx * dx + dy * dy + dz * dz) ** -1.5
            m1, m2 = b1[6] * mag, b2[6] * mag
            b1[3] -= dx * m2
            b1[4] -= dy * m2
            b1[5] -= dz * m2
            b2[3] += dx * m1
            b2[4] += dy * m1
            b2[5] += dz * m1
        for b in bodies:
            b[0] += 0.01 * b[3]
            b[1] += 0.01 * b[4]
            b[2] += 0.01 * b[5]
    return bodies[0][0]


def fannkuch(n: int = 9) -> int:
    perm1 = list(range(n))
    count = [0] * n
    max_flips = 0
    r = n
    while True:
        while r != 1:
            count[r - 1] = r
            r -= 1
        perm = perm1[:]
        flips = 0
        k = perm[0]
        while k:
            perm[: k + 1] = perm[k::-1]
            flips += 1
            k = perm[0]
        max_flips = max(max_flips, flips)
        while r != n:
            perm1.insert(r, perm1.pop(0))
            count[r] -= 1
            if count[r] > 0:
                break
            r += 1
        else:
            return max_flips


class Node:
    __slots__ = ("left", "right", "value")

    def __init__(self, value: int, left: Node | None = None, right: Node | None = None) -> None:
        self.value, self.left, self.right = value, left, right


def objects(depth: int = 17) -> int:
    def build(d: int) -> Node:
        return Node(d) if d == 0 else Node(d, build(d - 1), build(d - 1))

    def total(node: Node | None) -> int:
        return 0 if node is None else node.value + total(node.left) + total(node.right)

    return total(build(depth))


def strings(n: int = 400000) -> int:
    words: dict[str, int] = {}
    for i in range(n):
        key = f"word{i % 997}-{i % 13}"
        words[key] = words.get(key, 0) + len(key.upper().replace("WORD", "w"))
    return sum(words.values())


KERNELS = {"nbody": nbody, "fannkuch": fannkuch, "objects": objects, "strings": strings}


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    best = {}
    for name, kernel in KERNELS.items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            kernel()
            times.append(time.perf_counter() - started)
        best[name] = min(times)
    best["total"] = sum(best.values())
    print(json.dumps({"python": sys.version.split()[0], "seconds": best}))


if __name__ == "__main__":
    main()
