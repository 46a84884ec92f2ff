"""Model Monitor: baselines, drift and data-quality checks, as pure functions.

`dataset` reads CSV, JSON Lines and data-capture files into columns; `statistics` writes
statistics.json and suggests constraints.json in Model Monitor's schema; `drift` holds the
distances (KS, PSI, L-infinity, chi-square, Jensen-Shannon); `checks` turns them into
SageMaker's violations; `analyzer` is the analyzer image's two runs; `replay` compares a
candidate's answers to captured traffic with the captured outputs and `replay_run` runs it
on a temporary endpoint through boto3. Processing jobs and monitoring schedules that run
them durably live in jobs/.
"""
