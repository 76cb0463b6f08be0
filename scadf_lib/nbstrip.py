"""Strip outputs from a notebook (git clean filter): ``python -m scadf_lib.nbstrip < in > out``.

Notebooks are committed without outputs, execution counts or widget state; tags and the
``parameters`` cell are kept.
"""

from __future__ import annotations

import sys

import nbformat


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs, execution counts and volatile metadata in place; return ``nb``."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "papermill", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    for key in ("widgets", "papermill"):
        nb.metadata.pop(key, None)
    return nb


def main() -> int:
    nb = nbformat.read(sys.stdin, as_version=4)
    nbformat.write(strip(nb), sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
