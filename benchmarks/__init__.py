"""Side-by-side read benchmarks of attachfs and its peers (see README.md)."""
