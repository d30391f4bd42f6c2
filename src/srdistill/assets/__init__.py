"""Weights produced by this project (see scripts/make_sample_teacher.sh)."""
