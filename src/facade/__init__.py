"""facade: the stateful, brainstate-compatible layer of stategrad."""
