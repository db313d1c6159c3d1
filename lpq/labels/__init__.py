"""The label side of LPQLD: relabel, prune, quantize, temperatures, and the replay shared with training."""
