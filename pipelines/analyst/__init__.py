"""What analysts and merchants run: query, explain, report and what-if over the published tables."""
