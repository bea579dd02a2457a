"""The bridge machinery of the facade: keys, the bridge, lowering and the one route to a
compiled program (``sites``). Internal: transforms import from here, users never do."""
