"""Static checks of the container deployment in docker/ (no Docker daemon needed)."""
