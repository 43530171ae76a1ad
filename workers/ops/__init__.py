"""Operating the pipeline: the reconciler (`reconcile`), the per-source quality report (`report`), one
article's journey (`trace`), dead letters (`dead_letters`), and selecting and replaying articles
(`selection`, used by `retry` and `reprocess`). The CLI prints; these modules decide.

May import `ingest`, `runtime`, `db`, `stages`, `core` and `schemas`; never `cli`.
"""
