"""Hardware profiles and the runtimes that measure models on them."""
