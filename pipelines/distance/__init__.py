"""Distances between datasets: Wasserstein-1 between embedding clouds, with self baselines and intervals.

wasserstein.py: W1 between two point sets (exact, sliced, sinkhorn, auto).
compare.py: every pair of named datasets at one sample size, self baselines, bootstrap intervals.
heatmap.py: a distance matrix as a PNG. text.py and word_vectors.py: fastText caption embeddings.
"""
