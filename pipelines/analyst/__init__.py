"""What analysts and merchants read: the published tables, query, explain, report, what-if."""
