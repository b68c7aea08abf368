"""Evaluation: the Occ3D metrics (confusion matrices over a split, every mask and class convention),
scoring of label directories and of the store's labels, and the tables that show the scores."""
