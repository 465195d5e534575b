"""Before and after on a noisy machine: two revisions' settlement cost, measured in turns.

A shared virtual machine's speed drifts by a quarter within minutes, so a figure measured
today against one from an hour ago says little. This checks both revisions out (git
worktrees in a temporary folder), then runs each one's own ``settle_bench.py`` on one
route and concurrency, alternately, ``--rounds`` times, and prints the node CPU per
settlement of each node (the steadiest figure) and the settlements per second, as means
over the rounds, with the change. Each run imports its revision's code: a folder of links
to the worktree's packages comes first on ``PYTHONPATH``, for the bench and for every node
process it starts.

    .venv/bin/python bench/compare_revisions.py 5bbda1b HEAD                # 4 hops, c64, 3 rounds
    .venv/bin/python bench/compare_revisions.py main my-branch --rounds 5 --routes 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
OLD_LAYOUT = {
    "yidi": "libs/yidi_proto/yidi",
    "yidi_cli": "libs/yidi_cli",
    "yidi_core": "libs/yidi_core",
    "yidi_runtime": "libs/yidi_runtime",
    "yidi_services": "services",
}
"""Where each package lived before every import name became a folder of ``libs/``."""


def packages(tree: Path) -> dict[str, Path]:
    """Each importable package of a checkout and its folder, in either layout."""
    if (tree / "services").is_dir():
        return {package: tree / path for package, path in OLD_LAYOUT.items()}
    return {folder.name: folder for folder in (tree / "libs").iterdir() if folder.is_dir()}


def checkout(revision: str, folder: Path) -> Path:
    """A worktree of ``revision`` in ``folder``, and beside it a folder of links to import its packages from."""
    tree = folder / "tree"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tree), revision], check=True
    )
    overlay = folder / "packages"
    overlay.mkdir()
    for package, path in packages(tree).items():
        (overlay / package).symlink_to(path, target_is_directory=True)
    return tree


def run_bench(folder: Path, args: argparse.Namespace, number: int) -> dict[str, Any]:
    """One run of the revision's own settle bench; its figures for the route and concurrency."""
    written = folder / f"run-{number}.json"
    command = [
        sys.executable,
        str(folder / "tree" / "bench" / "settle_bench.py"),
        "--routes",
        str(args.routes),
        "--concurrency",
        str(args.concurrency),
        "--count",
        str(args.count),
        "--echo-count",
        str(args.echo_count),
        "--json",
        str(written),
    ]
    environment = {**os.environ, "PYTHONPATH": str(folder / "packages")}
    subprocess.run(command, env=environment, check=True, stdout=subprocess.DEVNULL)
    report = json.loads(written.read_text())
    [route] = report["routes"].values()
    figures: dict[str, Any] = route[f"c{args.concurrency}"]
    return figures


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Means over the runs: node CPU per settlement by node and in all, settlements and chain calls per second."""
    nodes = runs[0]["settle"]["cpu_ms_per_call"]["by_server"]
    means = {
        node: statistics.mean(run["settle"]["cpu_ms_per_call"]["by_server"][node] for run in runs)
        for node in nodes
    }
    means["all nodes"] = statistics.mean(run["settle"]["cpu_ms_per_call"]["servers"] for run in runs)
    means["settlements/s"] = statistics.mean(run["settle"]["per_second"] for run in runs)
    means["chain calls/s"] = statistics.mean(run["chain"]["per_second"] for run in runs)
    return means


def comparison(
    before: str, after: str, figures: dict[str, dict[str, float]], args: argparse.Namespace
) -> Table:
    """Each row before and after, with the change; nodes that did no work are left out."""
    grid = Table(
        title=f"{args.routes}-hop settlements at concurrency {args.concurrency}: means of {args.rounds} "
        "alternating runs",
        caption="node rows: CPU milliseconds the node spent per settlement",
    )
    for heading in ("", before, after, "change"):
        grid.add_column(heading, justify="left" if not heading else "right")
    for row, old in figures[before].items():
        new = figures[after][row]
        if max(old, new) < 0.5 and row not in ("settlements/s", "chain calls/s"):
            continue
        grid.add_row(row, f"{old:.1f}", f"{new:.1f}", f"{(new - old) / old:+.0%}" if old else "")
    return grid


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", help="a git revision: the code before")
    parser.add_argument("after", help="a git revision: the code after")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each revision, alternating (default 3)"
    )
    parser.add_argument(
        "--routes", type=int, choices=(1, 2, 4), default=4, help="the route, by hops (default 4)"
    )
    parser.add_argument("--concurrency", type=int, default=64, help="settlements in flight (default 64)")
    parser.add_argument("--count", type=int, default=256, help="settlements per run (default 256)")
    parser.add_argument("--echo-count", type=int, default=1000, help="echo calls per run (default 1000)")
    args = parser.parse_args()
    if args.before == args.after:
        parser.error("name two different revisions (HEAD~0 and HEAD compare the code with itself)")
    return args


def main() -> None:
    args = _arguments()
    args.rounds = max(1, min(args.rounds, 20))
    console = Console(width=None if sys.stdout.isatty() else 100)
    runs: dict[str, list[dict[str, Any]]] = {args.before: [], args.after: []}
    with tempfile.TemporaryDirectory(prefix="yidi-compare-") as temporary:
        folders = {revision: Path(temporary) / f"revision-{index}" for index, revision in enumerate(runs)}
        try:
            for revision, folder in folders.items():
                folder.mkdir()
                checkout(revision, folder)
            for number in range(args.rounds):
                for revision, folder in folders.items():
                    runs[revision].append(run_bench(folder, args, number))
                    console.print(f"round {number + 1}: {revision} measured")
        finally:
            for folder in folders.values():
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder / "tree")],
                    check=False,
                    capture_output=True,
                )
    console.print(comparison(args.before, args.after, {r: summary(v) for r, v in runs.items()}, args))


if __name__ == "__main__":
    main()
