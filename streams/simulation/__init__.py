"""A simulated city (events and the ground truth of what they must raise), its sample catalog, and
the demo that plays it into a running monitor."""
