"""`newsflow serve`: the HTTP service (an entry point, beside the CLI): articles in (`POST /v1/articles`),
one article and the changes feed out, with bearer-token auth, `/healthz` and `/metrics`.

- `auth`: the tokens, their scopes, the constant-time check;
- `intake`: reading a request body within its limits and turning it into records, as the producer reads
  files;
- `metrics`: the service's Prometheus series;
- `openapi`: the published schema;
- `app`: the Starlette application;
- `server`: running it under uvicorn.
"""
