"""Scores of generated samples: the metrics (IS, m-IS, FID, KID, precision/recall, memorisation,
diversity), the classifiers they use, the paper's Inception protocol, a run's evaluation report,
and the multi-seed comparison and trajectory built on them."""
