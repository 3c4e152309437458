"""Policy-gradient math as small pure functions on tensors: advantages, KL estimators, losses.

Nothing here knows about models or the loop, so each function is pinned by hand-computed values in the tests
and shared by the GRPO, REINFORCE++ and PPO updaters.
"""
