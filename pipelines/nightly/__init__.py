"""The one run sequence of a night: state, score, gates, atomic publish, manifest."""
