"""The crawl: reader -> fetcher -> image/video decoder -> shard writer, one shard at a time."""
