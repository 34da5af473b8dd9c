-- The latest state of each run, with its start time from the first event.
CREATE VIEW runs AS
SELECT
    run_id,
    flow,
    status,
    min(started_at) OVER (PARTITION BY run_id) AS started_at,
    ended_at,
    ended_at - min(started_at) OVER (PARTITION BY run_id) AS duration,
    code_version,
    host,
    error,
    config
FROM run_events
QUALIFY row_number() OVER (PARTITION BY run_id ORDER BY event_time DESC) = 1;
