"""Benchmarks of the sms.cn provider against the do-it-yourself way; run ``benchmarks/run_all.py``.

Scripts, not timed tests: timings on a shared 2-core machine are too noisy to gate CI, but worth
writing down (``docs/benchmarks.md``) with the setup that produced them.
"""
