"""The loop: generate -> verify -> select -> update, then evaluate, with every stage on disk."""
