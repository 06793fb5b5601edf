"""chat-outbox is a good guest in a host process: no module of it edits sys.modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import chat_outbox

pytestmark = pytest.mark.unit

SOURCE = Path(chat_outbox.__file__).parent


def edits_of_sys_modules(tree: ast.AST) -> list[int]:
    """The lines that assign, augment or delete `sys.modules[...]` or `sys.modules`."""

    def is_sys_modules(node: ast.expr) -> bool:
        if isinstance(node, ast.Subscript):
            node = node.value
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "modules"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        )

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.Delete):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        lines += [node.lineno for target in targets if is_sys_modules(target)]
    return lines


def test_no_module_of_the_package_assigns_or_deletes_sys_modules_entries() -> None:
    """Hiding or faking a module for one import would change it for the host's code too."""
    edits = {
        str(path.relative_to(SOURCE)): found
        for path in sorted(SOURCE.rglob("*.py"))
        if (found := edits_of_sys_modules(ast.parse(path.read_text(), str(path))))
    }
    assert edits == {}


@pytest.mark.parametrize(
    "code",
    [
        "import sys\nsys.modules['fastapi'] = None",
        "import sys\ndel sys.modules['pydantic']",
        "import sys\nsys.modules.update({}); sys.modules = {}",
    ],
)
def test_the_scan_finds_an_edit_of_sys_modules(code: str) -> None:
    """So that the check above can fail."""
    assert edits_of_sys_modules(ast.parse(code)) != []
