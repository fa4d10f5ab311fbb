"""NAS-Bench-201: the compact table, its files, and the official APIs as back-ends."""
