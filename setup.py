"""Every import name is a folder of ``libs/``: ``yidi_services.settlement.insured`` is
``libs/yidi_services/settlement/insured``. Every folder below one holding Python files is a
package (migration folders have no ``__init__.py``)."""

from pathlib import Path

from setuptools import setup

ROOT = Path("libs")
FOLDERS = sorted({source.parent for source in ROOT.rglob("*.py")})
PACKAGES = [".".join(folder.relative_to(ROOT).parts) for folder in FOLDERS]

setup(
    packages=PACKAGES,
    package_dir={"": "libs"},
    package_data={"": ["*.mako", "*.toml", "*.json", "*.csv", "py.typed", "*.pyi"]},
)
