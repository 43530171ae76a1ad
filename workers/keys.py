"""Every Redis key and queue name newsflow uses, in one place (STYLE.md 4)."""

PREFIX = "newsflow"


def task_name(stage: str) -> str:
    """Celery task name of a stage, e.g. `newsflow.clean`."""
    return f"{PREFIX}.{stage}"


def queue_name(stage: str) -> str:
    """Broker queue of a stage; one per stage so each scales on its own."""
    return f"{PREFIX}.{stage}"


def deliveries(task_id: str, retries: int) -> str:
    """Counter of deliveries of one task attempt; a message that keeps killing workers is dead-lettered."""
    return f"{PREFIX}:deliveries:{task_id}:{retries}"
