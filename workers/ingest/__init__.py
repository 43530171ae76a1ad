"""Taking input in: reading files and archives as positioned, validated records (`readers`, `archives`),
persisting raw articles and publishing their first message (`producer`), and feeding archives with
checkpoints (`backfill`).

May import `runtime`, `db`, `stages`, `core` and `schemas`; never `ops` or `cli`.
"""
