"""Tests of embedders, enhancers, matching, quality gate and model registry."""
