"""flchain aggregator."""
