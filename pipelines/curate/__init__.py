"""Curation: per-sample scores, filters, global deduplication and decontamination, curated shards."""
