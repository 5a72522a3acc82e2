"""Asset checks, next to the assets they guard in spirit, in modules of their own."""
