"""The validator service: re-runs each round a task's aggregator proposes and attests or disputes it."""
