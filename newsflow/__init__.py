"""The Python client of `newsflow serve`: submit raw articles, read one back, follow the changes feed.

    from newsflow import Client

    with Client("https://news.example.org", token) as client:
        result = client.submit(articles)          # any iterable of dicts, sent in batches
        print(result.ids, result.errors)
        client.get(result.ids[0])
        for article in client.changes(after=None):
            ...                                   # article["cursor"] resumes the feed

It speaks HTTP only (httpx) and imports nothing of the service.
"""

from newsflow.client import Client, Error, RecordError, SubmitResult

__all__ = ["Client", "Error", "RecordError", "SubmitResult"]
