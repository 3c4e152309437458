"""Held-out evaluation: greedy accuracy, pass@k and maj@k from n samples, shared by the CLI and the loop."""
