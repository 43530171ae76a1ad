"""Loaded into a test worker (`--include`): kombu's restore of unacknowledged messages raises what it
raised in the fault campaign (celery/kombu#582) the first time it runs with messages to restore after
the broker connection was lost: `AttributeError: 'NoneType' object has no attribute 'hostname'`.

It is raised from kombu's own `_connparams` (the transport's connection gone), called by kombu's
`restore_unacked`, so the traceback is kombu's as in the real failure.
"""

import os
import sys
import traceback

from kombu.transport import redis as kombu_redis

_original_restore = kombu_redis.QoS.restore_unacked
_fired: list[bool] = []


def _restore_unacked(self, client=None):  # type: ignore[no-untyped-def]
    if os.environ.get("NEWSFLOW_TEST_KOMBU582_TRACE"):
        print(
            "restore_unacked",
            len(self._delivered),
            "".join(traceback.format_stack(limit=12)),
            file=sys.stderr,
        )
    if self._delivered and not _fired:
        _fired.append(True)
        channel = self.channel
        saved = channel.connection.client, channel._pool
        channel.connection.client, channel._pool = None, None
        try:
            return _original_restore(self, client)  # raises AttributeError inside kombu's _connparams
        finally:
            channel.connection.client, channel._pool = saved
    return _original_restore(self, client)


kombu_redis.QoS.restore_unacked = _restore_unacked
