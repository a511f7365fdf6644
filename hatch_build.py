"""Build hook: the classifier's hot modules compiled with mypyc (omniroute/classifier/README.md).

The compiled modules go to `omniroute/classifier/_compiled/` with a manifest of the sources
they were compiled from; `omniroute.classifier` puts that folder first on its `__path__` only
while every listed source is unchanged, so an edited module is never shadowed by a stale build.
An editable install compiles into the work tree (git ignores the folder), a wheel carries it.
OMNIROUTE_CLASSIFIER_PURE=1 at build time skips the compilation (a pure-Python package).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = Path("omniroute/classifier")
COMPILED = PACKAGE / "_compiled"
MANIFEST = "sources.json"
# Each module's own file; the shared library holding them all is `<GROUP>__mypyc`.
GROUP = "omniroute.classifier.native"
# mypy settings of the compilation: third-party types (numpy, pydantic...) are Any to mypyc,
# which then calls them as Python would, and never looked up in site-packages, so the build is
# the same whether or not they are installed yet (pip builds before it installs them).
_MYPY_CONFIG = """\
[mypy]
python_version = 3.11
disallow_untyped_defs = True
ignore_missing_imports = True
no_site_packages = True
"""


class MypycHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("OMNIROUTE_CLASSIFIER_PURE") == "1":
            return
        root = Path(self.root)
        modules: list[str] = self.config["modules"]
        self._built = Path(tempfile.mkdtemp(prefix="omniroute-mypyc-"))
        compiled = compile_modules(root, modules, self._built)
        if version == "editable":
            # The work tree is what an editable install imports.
            target = root / COMPILED
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(compiled, target)
        else:
            for path in compiled.iterdir():
                build_data["force_include"][str(path)] = str(COMPILED / path.name)
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        built = getattr(self, "_built", None)
        if built is not None:
            shutil.rmtree(built, ignore_errors=True)


def compile_modules(root: Path, modules: list[str], work: Path) -> Path:
    """Compile `modules` (names in the classifier package) into `work`/out: one extension per
    module, the group's shared library and the manifest of their sources' digests."""
    sources = [root / PACKAGE / f"{name}.py" for name in modules]
    config = work / "mypy.ini"
    config.write_text(_MYPY_CONFIG)
    script = (
        "import sys\n"
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        "config, group, target, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]\n"
        "sys.argv[1:] = ['build_ext', '--build-lib', target + '/lib', '--build-temp',"
        " target + '/tmp']\n"
        "setup(name='omniroute-classifier-native', packages=[], ext_modules=mypycify(\n"
        "    ['--config-file', config, '--cache-dir', target + '/cache', *paths],\n"
        "    opt_level='3', group_name=group, target_dir=target + '/c'))\n"
    )
    # Run where no pyproject.toml is, so setuptools reads none of the project's settings.
    process = subprocess.run(
        [sys.executable, "-c", script, str(config), GROUP, str(work), *map(str, sources)],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    if process.returncode:
        raise RuntimeError(
            "mypyc could not compile the classifier (OMNIROUTE_CLASSIFIER_PURE=1 builds without"
            f" it):\n{process.stdout.decode(errors='replace')}"
        )
    out = work / "out"
    out.mkdir()
    for extension in (work / "lib").rglob("*.so"):
        shutil.copy2(extension, out / extension.name)
    digests = {name: _digest(path) for name, path in zip(modules, sources, strict=True)}
    (out / MANIFEST).write_text(json.dumps({"group": GROUP, "sources": digests}, indent=1))
    return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
