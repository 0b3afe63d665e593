"""The web dashboard served at ``/ui``: static files (plain ES modules and a vendored uPlot),
no build step and nothing fetched from a CDN, so ``pip install querywatch`` is enough.

The pages talk only to the JSON API (``/v1/...``) with the signed-in API key; see
:func:`querywatch.detector.adapters.ui.mount.mount_ui`.
"""
