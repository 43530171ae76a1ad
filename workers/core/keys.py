"""Every Redis key and queue name newsflow uses, in one place (STYLE.md 4)."""

PREFIX = "newsflow"


def task_name(stage: str) -> str:
    """Celery task name of a stage, e.g. `newsflow.clean`."""
    return f"{PREFIX}.{stage}"


def queue_name(stage: str) -> str:
    """Broker queue of a stage; one per stage so each scales on its own."""
    return f"{PREFIX}.{stage}"


def deliveries(delivery_tag: str) -> str:
    """Counter of deliveries of one published message (its broker delivery tag, which a redelivery keeps);
    a message that keeps killing workers is dead-lettered. Expires with the visibility timeout and is
    deleted when the task ends, so these keys stay bounded by the messages in flight."""
    return f"{PREFIX}:deliveries:{delivery_tag}"


def deliveries_pattern() -> str:
    """SCAN pattern matching every delivery counter."""
    return f"{PREFIX}:deliveries:*"
