"""Analyses from "Towards Understanding Self-play for LLM Reasoning": pass@k curves, policy token entropy,
parameter update sparsity, and response length against problem difficulty."""
