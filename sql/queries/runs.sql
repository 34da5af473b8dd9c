-- Every run, newest first.
SELECT run_id, flow, status, started_at, duration, code_version, error
FROM runs
ORDER BY started_at DESC;
