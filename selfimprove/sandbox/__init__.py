"""A sandbox for model-written code: bubblewrap isolation where it works, resource limits always."""

from selfimprove.sandbox.limits import Limits
from selfimprove.sandbox.run import Job, Mode, Result, mode, run_many, run_pair, run_pairs, run_python

__all__ = ["Job", "Limits", "Mode", "Result", "mode", "run_many", "run_pair", "run_pairs", "run_python"]
