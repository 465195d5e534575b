"""Maps import names to the DESIGN.md folders and finds every subpackage below each."""

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
        for init in sorted(Path(root).rglob("__init__.py")):
            rel = init.parent.relative_to(root).parts
            found[".".join((name, *rel))] = init.parent.as_posix()
    return found


PACKAGES = _packages()

setup(
    packages=list(PACKAGES),
    package_dir=PACKAGES,
    package_data={
        "": ["*.mako", "*.toml", "*.json", "*.csv", "py.typed", "*.pyi"],
        "yidi_services": ["*/migrations/versions/*.py"],
    },
)
