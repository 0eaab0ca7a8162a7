"""flchain backend."""
