"""What the online updaters optimise: policy-gradient math as small pure functions on tensors (advantages, KL
estimators, losses), pinned by hand-computed values in the tests, and the objective the trainer runs
(``policy_gradient``: the options and the micro-batch loss shared by GRPO, REINFORCE++ and PPO).

The trainer (``selfimprove.training``) and the updaters both build on this package; it imports neither.
"""
