"""Developers' tools the night never imports: the data generator and the benchmark."""
