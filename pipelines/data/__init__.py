"""Reading training data: WebDataset shards into batches of (images, tokens)."""
