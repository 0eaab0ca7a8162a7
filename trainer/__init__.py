"""flchain trainer."""
