"""Pure comparisons over scored tables: explain a score, compare two rule sets."""
