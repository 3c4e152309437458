"""Training on live weights: tokenization shared by every updater, the actor's log-probs, the online trainer."""
