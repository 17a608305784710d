"""The HTTP server package (placeholder; replaced at merge)."""
