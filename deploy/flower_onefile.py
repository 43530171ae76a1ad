"""Run `celery flower` with its saved state in exactly one file, the path given to --db (FLOWER_DB).

Flower saves its task history with `shelve`, whose dbm backend depends on how Python was built:
gdbm writes the file as named, ndbm appends `.db`, and the fallback (dbm.dumb) writes `.dat`,
`.dir` and `.bak` beside it. Here the shelf is one pickled dict written atomically (a temporary
file, then a rename), so FLOWER_DB names the one file there is, whatever the interpreter.
Flower's log lines go through newsflow's logging (JSON lines off a terminal, as every process).
deploy/flower.sh runs this as `python flower_onefile.py -A workers.runtime.celery_app flower ...`.
"""

import os
import pickle
import shelve
import sys
from typing import Any


class OneFileShelf(dict[str, Any]):
    """A dict loaded from `path` (unless `flag` is "n") and written back to it, whole, on close."""

    def __init__(self, path: str, flag: str = "c") -> None:
        super().__init__()
        self.path = path
        if flag != "n" and os.path.exists(path):
            with open(path, "rb") as handle:
                self.update(pickle.load(handle))  # noqa: S301 -- our own state file, as shelve's

    def close(self) -> None:
        partial = f"{self.path}.partial"
        with open(partial, "wb") as handle:
            pickle.dump(dict(self), handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, self.path)

    def __enter__(self) -> "OneFileShelf":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _open(
    filename: str, flag: str = "c", protocol: int | None = None, writeback: bool = False
) -> OneFileShelf:
    return OneFileShelf(filename, flag)


if __name__ == "__main__":
    shelve.open = _open  # type: ignore[assignment]
    # Flower's own lines (and Tornado's, which adds no handler of its own once the root logger has
    # one) go through newsflow's logging: JSON lines like every other process, unless on a terminal.
    from workers.core.logging import configure_logging
    from workers.core.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    from celery.bin.celery import main

    sys.argv[0] = "celery"
    sys.exit(main())
