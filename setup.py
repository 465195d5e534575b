"""Maps import names to the DESIGN.md folders; every folder below one holding Python files is a package."""

from pathlib import Path

from setuptools import setup

ROOTS = {
    "yidi_core": "libs/yidi_core",
    "yidi_runtime": "libs/yidi_runtime",
    "yidi_cli": "libs/yidi_cli",
    "yidi": "libs/yidi_proto/yidi",
    "yidi_services": "services",
}


def _packages() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, root in ROOTS.items():
        folders = {source.parent for source in Path(root).rglob("*.py")} | {Path(root)}
        for folder in sorted(folders):
            rel = folder.relative_to(root).parts
            found[".".join((name, *rel))] = folder.as_posix()
    return found


PACKAGES = _packages()

setup(
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={"": ["*.mako", "*.toml", "*.json", "*.csv", "py.typed", "*.pyi"]},
)
