"""The engine as a local HTTP server (`python -m engine serve`), per docs/server-api.md.

Modules: config (options), errors (HTTP error bodies), blobs (content-addressed PNG store),
jobs (job folders, status, restart recovery), worker (one job at a time per device),
auth (bearer token), logs (JSON log lines), app (routes), serve (the process entry).
"""
