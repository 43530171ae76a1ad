"""The OpenAPI 3.1 document `GET /openapi.json` publishes: the routes, their answers, and the article
schemas taken from the boundary models themselves (so the schema cannot drift from what is validated)."""

from functools import cache
from typing import Any

PATHS = (
    "/v1/articles",
    "/v1/articles/{id}",
    "/v1/changes",
    "/healthz",
    "/livez",
    "/metrics",
    "/openapi.json",
)

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"$ref": "#/components/schemas/Error"}}},
    }


_RETRY = {
    "Retry-After": {"description": "Seconds to wait before sending again.", "schema": {"type": "integer"}}
}


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once)."""
    from pydantic.json_schema import models_json_schema

    from schemas import RawArticle, StoredArticle

    _, defs = models_json_schema(
        [(RawArticle, "validation"), (StoredArticle, "serialization")],
        ref_template="#/components/schemas/{model}",
    )
    components: dict[str, Any] = {**defs.get("$defs", {}), "Error": _ERROR}
    components["SubmitAnswer"] = {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer", "description": "Valid records, persisted and enqueued."},
            "new": {"type": "integer", "description": "Of those, articles not stored before."},
            "rejected": {"type": "integer"},
            "records": {
                "type": "array",
                "description": "One entry per record, in order: its id, or where it is and why it was refused.",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "id": {"type": "string"},
                        "position": {"type": "string", "description": "request:LINE or request[INDEX]"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                            },
                        },
                    },
                    "required": ["index"],
                },
            },
        },
    }
    components["ChangesPage"] = {
        "type": "object",
        "properties": {
            "articles": {
                "type": "array",
                "items": {
                    "allOf": [
                        {"$ref": "#/components/schemas/StoredArticle"},
                        {"type": "object", "properties": {"cursor": {"type": "string"}}},
                    ]
                },
            },
            "next": {"type": "string", "description": "The cursor to ask from next (`after`)."},
        },
    }
    read: list[dict[str, list[str]]] = [{"bearer": []}]
    denied = {"401": _answer("No token, or an unknown one."), "403": _answer("The token lacks the scope.")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "newsflow", "version": "1", "description": "Articles in and out over HTTP."},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/articles": {
                "post": {
                    "summary": "Submit raw articles (scope submit).",
                    "description": "A JSON array of raw articles, or JSON lines. Each record is validated as "
                    "`newsflow enqueue` validates a line; valid ones are persisted before the answer and "
                    "enqueued; a resent record changes nothing (its id is derived from it).",
                    "security": read,
                    "parameters": [
                        {"name": "ignore_unknown_fields", "in": "query", "schema": {"type": "boolean"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/RawArticle"},
                                }
                            },
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "responses": {
                        "202": _answer(
                            "Accepted: each record's id or error.",
                            {"$ref": "#/components/schemas/SubmitAnswer"},
                        ),
                        "400": _answer("Not a JSON array or JSON lines."),
                        **denied,
                        "408": _answer("The body did not arrive within the deadline."),
                        "413": _answer("The body is above the size or record limit."),
                        "415": _answer("A Content-Encoding was used."),
                        "429": {
                            **_answer("The pipeline is behind, or too many submissions at once."),
                            "headers": _RETRY,
                        },
                        "503": {**_answer("Redis or the database is not answering."), "headers": _RETRY},
                    },
                }
            },
            "/v1/articles/{id}": {
                "get": {
                    "summary": "One article as `newsflow show --json` prints it (scope read).",
                    "security": read,
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": _answer("The article.", {"type": "object"}),
                        **denied,
                        "404": _answer("No such article."),
                    },
                }
            },
            "/v1/changes": {
                "get": {
                    "summary": "Stored articles in store order from a cursor (scope read).",
                    "security": read,
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                    ],
                    "responses": {
                        "200": _answer(
                            "A page and the next cursor.", {"$ref": "#/components/schemas/ChangesPage"}
                        ),
                        "400": _answer("A malformed cursor or limit."),
                        **denied,
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Readiness: database and Redis.",
                    "responses": {"200": _answer("Ready."), "503": _answer("Not ready.")},
                }
            },
            "/livez": {"get": {"summary": "Liveness.", "responses": {"200": _answer("Alive.")}}},
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics.",
                    "responses": {"200": {"description": "Text format."}},
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document.", "responses": {"200": {"description": "OpenAPI."}}}
            },
        },
    }
