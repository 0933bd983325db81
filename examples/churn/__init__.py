"""The churn example: an ordinary messy table (text, gaps, an id and a date column)."""
