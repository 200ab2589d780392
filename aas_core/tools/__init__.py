"""Research and operations tools: synthetic scenes, benchmarks, evaluation, health."""
