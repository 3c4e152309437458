"""selfimprove: LLM self-improvement methods as YAML recipes over one loop.

generate -> verify -> select -> update, then evaluate.
"""

__version__ = "0.1.0"
