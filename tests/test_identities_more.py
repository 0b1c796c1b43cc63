"""Identities that must change with everything a result depends on, and inputs edited after planning.

Each test here was a reviewer's reproduction: the identity missed a helper module a plugin imports, a model
family's defaults, or an array's middle; a data file or model folder edited between planning and reading.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from w2slab import fingerprint

LOSS_SOURCE = '''
from dataclasses import dataclass

import myhelpers_w2s

from w2slab.losses import Loss


@dataclass(frozen=True)
class HelpedXent(Loss):
    def __call__(self, logits, labels, step_frac):
        return myhelpers_w2s.scale() * logits.sum()
'''


def import_single_file_plugin(folder: Path, scale: int):
    """A single-file plugin (not a package) importing a sibling helper module, imported afresh."""
    (folder / "myhelpers_w2s.py").write_text(f"def scale():\n    return {scale}\n")
    (folder / "single_file_plugin.py").write_text(LOSS_SOURCE)
    for name in ("single_file_plugin", "myhelpers_w2s"):
        sys.modules.pop(name, None)
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("single_file_plugin", folder / "single_file_plugin.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["single_file_plugin"] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_editing_a_helper_module_a_single_file_plugin_imports_changes_its_code_digest(tmp_path):
    try:
        before = fingerprint.code_digest(import_single_file_plugin(tmp_path, 2).HelpedXent)
        again = fingerprint.code_digest(import_single_file_plugin(tmp_path, 2).HelpedXent)
        after = fingerprint.code_digest(import_single_file_plugin(tmp_path, 3).HelpedXent)
    finally:
        for name in ("single_file_plugin", "myhelpers_w2s"):
            sys.modules.pop(name, None)
    assert before == again and before != after


def test_installed_and_standard_library_modules_are_not_the_users():
    import json

    import numpy

    assert not fingerprint._is_user_file(Path(json.__file__).resolve())
    assert not fingerprint._is_user_file(Path(numpy.__file__).resolve())
    assert not fingerprint._is_user_file(fingerprint.PACKAGE_DIR / "losses.py")
    assert fingerprint._is_user_file(Path(__file__).resolve())
