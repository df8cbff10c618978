"""SpikeDHS-CLA on images and event samples: the dataset table, retraining, evaluation and energy."""
