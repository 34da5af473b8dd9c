-- Where fan-out work ran: per node ('<ip>/<Ray node id>', the host name outside Ray) and stage, the units of
-- work done there (ingest shards, training workers per attempt, evaluated (checkpoint, dataset) pairs, embedded
-- datasets). A shard or pair
-- that reran after its node was lost counts on the node that finished it, and where it ran before writing.
WITH work AS (
    SELECT node, 'ingest' AS stage, dataset_uri || '#' || shard_id AS unit, written_at AS done_at FROM ingest_shards
    UNION ALL
    SELECT node, 'train', run_id || '|' || from_step || '|' || rank, started_at FROM train_workers
    UNION ALL
    SELECT DISTINCT node, 'evaluate', run_id || '|' || checkpoint || '|' || dataset, time FROM eval_results
    UNION ALL
    SELECT node, 'distance embeddings', run_id || '|' || dataset, time FROM dataset_embeddings
)
SELECT
    coalesce(split_part(node, '/', 1), '(not recorded)') AS node_ip,
    coalesce(nullif(split_part(node, '/', 2), ''), '') AS node_id,
    stage,
    count(DISTINCT unit) AS units,
    max(done_at) AS last_at
FROM work
GROUP BY ALL
ORDER BY stage, node_ip;
