"""One owner for every record: only bot/domain/records.py writes the `notebooks` collection.

Read from the source, so a new writer anywhere fails here before it can disagree with the owner."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRITES = {"create", "create_and_put", "put", "update", "delete", "update_many", "put_many"}
OWNER = ROOT / "bot" / "domain" / "records.py"


def writes_to(tree: ast.AST, collection: str) -> list[int]:
    """Lines calling `<anything>.<a write>(collection, …)` (WRITES) with the name as a literal."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and first.value == collection:
                lines.append(node.lineno)
    return lines


def test_only_the_records_module_writes_notebook_records() -> None:
    offenders = {}
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        if path == OWNER:
            continue
        found = writes_to(ast.parse(path.read_text()), "notebooks")
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}, f"write notebook records through bot/domain/records.py, not here: {offenders}"


def test_the_check_sees_a_write_when_there_is_one() -> None:
    assert writes_to(ast.parse('store.update("notebooks", key, change)'), "notebooks") == [1]
    assert writes_to(ast.parse('store.update_many("notebooks", changes)'), "notebooks") == [1]
    assert writes_to(OWNER_TREE, "notebooks") == [], "the owner writes through its COLLECTION constant"
    assert writes_to(ast.parse(OWNER.read_text().replace("COLLECTION,", '"notebooks",')), "notebooks")


OWNER_TREE = ast.parse(OWNER.read_text())
